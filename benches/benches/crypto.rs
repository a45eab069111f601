//! Seal + open per packet with ring, RustCrypto and the null cipher, side by
//! side: 64 B, 1400 B, and a 64 KiB batch of 1400 B segments.
//!
//! `cargo bench -p mycelium-benches --bench crypto`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mycelium_common::crypto::oracle::RustCryptoAes256Gcm;
use mycelium_common::crypto::{Nonce, NullCipher, PacketCipher, RingAes256Gcm, SessionKey};

const AAD: [u8; 48] = [0x5a; 48];

fn seal_open<C: PacketCipher>(c: &mut Criterion) {
    let key = SessionKey::from_bytes([7; 32]);
    let cipher = C::new(&key);
    let mut group = c.benchmark_group(format!("seal+open/{}", C::NAME));
    for size in [64usize, 1400] {
        let mut buf = vec![0xa5u8; size];
        let mut counter = 0u64;
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("{size}B"), |b| {
            b.iter(|| {
                counter += 1;
                let nonce = Nonce::new(1, counter);
                let tag = cipher.seal_in_place(nonce, &AAD, black_box(&mut buf)).unwrap();
                cipher.open_in_place(nonce, &AAD, black_box(&mut buf), &tag).unwrap();
            })
        });
    }
    // A 64 KiB super-packet split into 1400 B segments, each sealed and opened.
    let segments = 65536 / 1400 + 1;
    let mut batch = vec![vec![0xa5u8; 1400]; segments];
    let mut counter = 0u64;
    group.throughput(Throughput::Bytes((segments * 1400) as u64));
    group.bench_function(format!("64KiB-batch-of-{segments}x1400B"), |b| {
        b.iter(|| {
            for seg in batch.iter_mut() {
                counter += 1;
                let nonce = Nonce::new(1, counter);
                let tag = cipher.seal_in_place(nonce, &AAD, black_box(seg)).unwrap();
                cipher.open_in_place(nonce, &AAD, black_box(seg), &tag).unwrap();
            }
        })
    });
    group.finish();
}

fn ciphers(c: &mut Criterion) {
    seal_open::<RingAes256Gcm>(c);
    seal_open::<RustCryptoAes256Gcm>(c);
    seal_open::<NullCipher>(c);
}

criterion_group!(benches, ciphers);
criterion_main!(benches);
