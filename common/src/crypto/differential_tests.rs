//! ring against RustCrypto: what one seals the other opens, for random keys,
//! nonces, associated data and every payload size class up to 64 KiB.

use proptest::prelude::*;

use super::oracle::RustCryptoAes256Gcm;
use super::{Nonce, Open, PacketCipher, RingAes256Gcm, Seal, SessionKey};

fn payload_len() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..=64, 65usize..=1500, 1501usize..=65535, Just(65535)]
}

fn case() -> impl Strategy<Value = ([u8; 32], u8, u64, Vec<u8>, Vec<u8>)> {
    (any::<[u8; 32]>(), any::<u8>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64), payload_len())
        .prop_flat_map(|(key, shard, counter, aad, len)| {
            (Just(key), Just(shard), Just(counter), Just(aad), proptest::collection::vec(any::<u8>(), len))
        })
}

fn round_trip<S: PacketCipher, O: PacketCipher>(
    key: [u8; 32],
    nonce: Nonce,
    aad: &[u8],
    plain: &[u8],
) -> Result<(), TestCaseError> {
    let key = SessionKey::from_bytes(key);
    let (sealer, opener) = (S::new(&key), O::new(&key));
    let mut buf = plain.to_vec();
    let tag = sealer.seal_in_place(nonce, aad, &mut buf).unwrap();
    if !plain.is_empty() {
        prop_assert_ne!(&buf[..], plain);
    }
    let mut tampered = buf.clone();
    if let Some(b) = tampered.first_mut() {
        *b ^= 1;
        prop_assert!(opener.open_in_place(nonce, aad, &mut tampered, &tag).is_err());
    }
    let mut bad_tag = tag;
    bad_tag[15] ^= 0x80;
    prop_assert!(opener.open_in_place(nonce, aad, &mut buf.clone(), &bad_tag).is_err());
    opener.open_in_place(nonce, aad, &mut buf, &tag).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&buf[..], plain);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn ring_seals_rustcrypto_opens((key, shard, counter, aad, plain) in case()) {
        round_trip::<RingAes256Gcm, RustCryptoAes256Gcm>(key, Nonce::new(shard, counter), &aad, &plain)?;
    }

    #[test]
    fn rustcrypto_seals_ring_opens((key, shard, counter, aad, plain) in case()) {
        round_trip::<RustCryptoAes256Gcm, RingAes256Gcm>(key, Nonce::new(shard, counter), &aad, &plain)?;
    }
}

#[test]
fn both_produce_identical_ciphertext_and_tag() {
    let key = SessionKey::from_bytes([0x42; 32]);
    let nonce = Nonce::new(3, 77);
    let mut a = vec![0xabu8; 1400];
    let mut b = a.clone();
    let ta = RingAes256Gcm::new(&key).seal_in_place(nonce, b"hdr", &mut a).unwrap();
    let tb = RustCryptoAes256Gcm::new(&key).seal_in_place(nonce, b"hdr", &mut b).unwrap();
    assert_eq!(a, b);
    assert_eq!(ta, tb);
}

#[test]
fn nonces_of_different_shards_never_collide() {
    assert_ne!(Nonce::new(0, 1), Nonce::new(1, 1));
    assert_eq!(Nonce::new(2, 0x0102).as_bytes(), &[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
}

#[test]
fn null_cipher_is_identity_with_a_zero_tag() {
    let c = super::NullCipher;
    let mut buf = *b"plain";
    let tag = c.seal_in_place(Nonce::new(0, 0), b"", &mut buf).unwrap();
    assert_eq!(&buf, b"plain");
    assert!(c.open_in_place(Nonce::new(0, 0), b"", &mut buf, &tag).is_ok());
    assert!(c.open_in_place(Nonce::new(0, 0), b"", &mut buf, &[1; 16]).is_err());
}
