//! SHA-1 (FIPS 180-4, section 6.1,
//! <https://csrc.nist.gov/pubs/fips/180-4/upd1/final>), one-shot.
//!
//! Hand-written rather than a dependency to keep the default dependency
//! tree small (one single-purpose crate less). Its only use is the RFC 6455
//! opening handshake: the client checks the server's `Sec-WebSocket-Accept`
//! against base64(SHA-1(key + GUID)) (RFC 6455, section 4.2.2). That check
//! proves the server speaks WebSocket, not that anyone is who they claim
//! (TLS does that), so SHA-1's broken collision resistance does not matter
//! here; do not use this for anything where security depends on the hash.
//!
//! Tested against the FIPS 180-2 / RFC 3174 vectors, RFC 6455's example,
//! and, differentially, against `sha1_smol` for every length around the
//! padding boundaries.

/// The initial hash value, H(0) (FIPS 180-4, section 5.3.1).
const INITIAL: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
/// A message block: 512 bits.
const BLOCK: usize = 64;
/// The bytes the padding ends with: the message length in bits, big-endian.
const LENGTH_BYTES: usize = 8;

/// The SHA-1 digest of `message`: 20 bytes, big-endian words as FIPS 180-4
/// writes them.
pub(crate) fn sha1(message: &[u8]) -> [u8; 20] {
    let mut state = INITIAL;
    let blocks = message.chunks_exact(BLOCK);
    let rest = blocks.remainder();
    for block in blocks {
        compress(&mut state, block);
    }
    // Padding (section 5.1.1): a 1 bit, zeros up to 448 bits mod 512, then
    // the length in bits as 64 bits. `rest` is under 64 bytes; when it
    // leaves no room for the 0x80 byte and the length (56 bytes or more)
    // the padding spans two blocks.
    let mut tail = [0u8; 2 * BLOCK];
    let tail_len = if rest.len() + 1 + LENGTH_BYTES <= BLOCK { BLOCK } else { 2 * BLOCK };
    for (slot, byte) in tail.iter_mut().zip(rest.iter().chain(&[0x80])) {
        *slot = *byte;
    }
    // The length is defined modulo 2^64 bits, as in every implementation;
    // no slice that long exists on the targets Rust supports anyway.
    let bits = (message.len() as u64).wrapping_mul(8);
    for (slot, byte) in tail.iter_mut().skip(tail_len - LENGTH_BYTES).zip(bits.to_be_bytes()) {
        *slot = byte;
    }
    for block in tail.chunks_exact(BLOCK).take(tail_len / BLOCK) {
        compress(&mut state, block);
    }
    let mut digest = [0u8; 20];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// Processes one 64-byte block into `state` (section 6.1.2).
fn compress(state: &mut [u32; 5], block: &[u8]) {
    // The message schedule as a window of its next 16 words: W(t) to
    // W(t+15) at round t.
    let mut window = [0u32; 16];
    for (word, bytes) in window.iter_mut().zip(block.chunks_exact(4)) {
        *word = bytes.iter().fold(0, |word, &byte| (word << 8) | u32::from(byte));
    }
    let [mut a, mut b, mut c, mut d, mut e] = *state;
    for round in 0..80 {
        let (f, k) = match round {
            0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
            20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
            _ => (b ^ c ^ d, 0xCA62_C1D6),
        };
        let w = window[0];
        // W(t+16) = ROTL1(W(t+13) xor W(t+8) xor W(t+2) xor W(t)).
        let next = (window[13] ^ window[8] ^ window[2] ^ window[0]).rotate_left(1);
        window.rotate_left(1);
        window[15] = next;
        let temp = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(w);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = temp;
    }
    for (h, v) in state.iter_mut().zip([a, b, c, d, e]) {
        *h = h.wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(digest: [u8; 20]) -> String {
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// FIPS 180-2 appendix A and RFC 3174 section 7.3
    /// (<https://www.rfc-editor.org/rfc/rfc3174#section-7.3>).
    #[test]
    fn fips_and_rfc_3174_vectors() {
        assert_eq!(hex(sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        // 448 bits: the padding needs a second block.
        assert_eq!(
            hex(sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex(sha1(&vec![b'a'; 1_000_000])), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
        // RFC 3174's fourth test: "0123456701234567…" (8 bytes × 80).
        assert_eq!(hex(sha1(&b"01234567".repeat(80))), "dea356a2cddd90c7a7ecedc5ebb563934f460452");
        // FIPS 180-4 examples' 896-bit message (two full blocks, padding in a third).
        assert_eq!(
            hex(sha1(
                b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
            )),
            "a49b2446a02c645bf419f995b67091253a04a259"
        );
    }

    /// RFC 6455, section 1.3: the SHA-1 of the example key with the GUID
    /// appended, as the RFC spells it out.
    #[test]
    fn rfc_6455_example() {
        let message = b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        assert_eq!(hex(sha1(message)), "b37a4f2cc0624f1690f64606cf385945b2bec4ea");
    }

    fn reference(message: &[u8]) -> [u8; 20] {
        sha1_smol::Sha1::from(message).digest().bytes()
    }

    /// Every length from 0 to 300 bytes: both sides of the 55/56 byte edge
    /// (one padding block or two) and of each 64-byte block edge.
    #[test]
    fn every_length_up_to_300_matches_sha1_smol() {
        let message: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(167) >> 2) as u8).collect();
        for len in 0..=message.len() {
            let part = &message[..len];
            assert_eq!(sha1(part), reference(part), "length {len}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_matches_sha1_smol(message in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            proptest::prop_assert_eq!(sha1(&message), reference(&message));
        }

        #[test]
        fn lengths_around_the_padding_edges_match_sha1_smol(
            blocks in 0usize..4,
            offset in proptest::sample::select(vec![0usize, 1, 54, 55, 56, 57, 62, 63]),
            byte in proptest::num::u8::ANY,
            seed in proptest::num::u8::ANY,
        ) {
            let len = blocks * BLOCK + offset;
            let message: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed) ^ byte).collect();
            proptest::prop_assert_eq!(sha1(&message), reference(&message));
        }
    }
}
