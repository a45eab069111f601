#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mycelium_fuzz::offload_split(data));
