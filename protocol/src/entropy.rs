//! Injected randomness.
//!
//! A machine that needs random bytes (the KCOM5 handshake, sealed-profile nonces, router uniques)
//! takes them from an [`Entropy`] it was given. Drivers pass the operating system's generator;
//! tests and the simulator pass a [`SplitMix64`] with a fixed seed, so runs repeat exactly.

/// A source of random bytes supplied by whoever drives the machine.
pub trait Entropy {
    /// Fill `dest` entirely with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

impl<E: Entropy + ?Sized> Entropy for &mut E {
    fn fill(&mut self, dest: &mut [u8]) {
        (**self).fill(dest)
    }
}

impl<E: Entropy + ?Sized> Entropy for alloc::boxed::Box<E> {
    fn fill(&mut self, dest: &mut [u8]) {
        (**self).fill(dest)
    }
}

/// A small deterministic generator (SplitMix64) for tests and simulations.
///
/// Not for keys or nonces facing a real attacker: seed it, and the whole run repeats.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose output is fixed by `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Entropy for SplitMix64 {
    fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 13]);
    }
}
