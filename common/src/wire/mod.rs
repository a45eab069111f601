//! Wire formats: checked zero-copy views over untrusted bytes plus plain
//! `Repr`s (smoltcp style). Once a view's `new_checked` succeeded, no
//! accessor can panic.

pub mod tlv;
