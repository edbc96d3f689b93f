//! Known answers from the standards, run through `BlockEngine`: the same CBC/CFB plumbing
//! `StageCipher` uses, with the standards' own keys and IVs.

use switchboard_proto::crypto::{Algorithm, BlockEngine, Mode};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

/// Encrypt `pt` and decrypt `ct` with the given key/IV/mode and compare both ways.
fn check(algorithm: Algorithm, mode: Mode, key: &str, iv: &str, pt: &str, ct: &str) {
    let engine = BlockEngine::new(algorithm, &h(key)).unwrap();
    let (pt, ct, iv) = (h(pt), h(ct), h(iv));
    let mut buf = pt.clone();
    engine.encrypt(mode, &iv, &mut buf).unwrap();
    assert_eq!(hex::encode(&buf), hex::encode(&ct), "{algorithm:?}/{mode:?} encrypt");
    let mut buf = ct.clone();
    engine.decrypt(mode, &iv, &mut buf).unwrap();
    assert_eq!(hex::encode(&buf), hex::encode(&pt), "{algorithm:?}/{mode:?} decrypt");
}

// NIST SP 800-38A, Appendix F: AES-256 key, IV and the four-block plaintext shared by F.2.5/F.2.6
// (CBC) and F.3.13/F.3.14 (CFB128).
const SP800_38A_KEY: &str = "603deb1015ca71be2b73aef0857d7781 1f352c073b6108d72d9810a30914dff4";
const SP800_38A_IV: &str = "000102030405060708090a0b0c0d0e0f";
const SP800_38A_PT: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
                            30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";

#[test]
fn aes256_cbc_sp800_38a_f25_f26() {
    let ct = "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
              39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b";
    check(Algorithm::Aes, Mode::Cbc, SP800_38A_KEY, SP800_38A_IV, SP800_38A_PT, ct);
    // RIJNDAEL is the same cipher.
    check(Algorithm::Rijndael, Mode::Cbc, SP800_38A_KEY, SP800_38A_IV, SP800_38A_PT, ct);
}

#[test]
fn aes256_cfb128_sp800_38a_f313_f314() {
    let ct = "dc7e84bfda79164b7ecd8486985d3860 39ffed143b28b1c832113c6331e5407b
              df10132415e54b92a13ed0a8267ae2f9 75a385741ab9cef82031623d55b1e471";
    check(Algorithm::Aes, Mode::Cfb, SP800_38A_KEY, SP800_38A_IV, SP800_38A_PT, ct);
    // CFB on a partial last block: the ciphertext is a prefix of the full one.
    let pt = &SP800_38A_PT.replace([' ', '\n'], "")[..2 * 37];
    check(Algorithm::Aes, Mode::Cfb, SP800_38A_KEY, SP800_38A_IV, pt, &ct.replace([' ', '\n'], "")[..2 * 37]);
}

/// RFC 4269 Appendix B: (key, plaintext, ciphertext) for single SEED blocks.
const RFC4269_B: [(&str, &str, &str); 4] = [
    ("00000000000000000000000000000000", "000102030405060708090A0B0C0D0E0F", "5EBAC6E0054E166819AFF1CC6D346CDB"),
    ("000102030405060708090A0B0C0D0E0F", "00000000000000000000000000000000", "C11F22F20140505084483597E4370F43"),
    ("4706480851E61BE85D74BFB3FD956185", "83A2F8A288641FB9A4E9A5CC2F131C7D", "EE54D13EBCAE706D226BC3142CD40D4A"),
    ("28DBC3BC49FFD87DCFA509B11D422BE7", "B41E6BE2EBA84A148E2EED84593C5EC7", "9B9B7BFCD1813CB95D0B3618F40F5122"),
];

#[test]
fn seed_rfc4269_appendix_b_through_cbc_and_cfb() {
    for (key, pt, ct) in RFC4269_B {
        // One CBC block from a zero IV is the bare block cipher.
        check(Algorithm::Seed, Mode::Cbc, key, "00000000000000000000000000000000", pt, ct);
        // CFB's first block is E(IV) xor plaintext: with IV = the vector's plaintext and a zero
        // plaintext, the output is the vector's ciphertext.
        check(Algorithm::Seed, Mode::Cfb, key, pt, "00000000000000000000000000000000", ct);
    }
}

// FIPS PUB 81 (DES modes of operation), Appendix B: key 0123456789abcdef, IV 1234567890abcdef,
// plaintext "Now is the time for all ".
const FIPS81_KEY: &str = "0123456789abcdef";
const FIPS81_IV: &str = "1234567890abcdef";
const FIPS81_PT: &str = "4e6f772069732074 68652074696d6520 666f7220616c6c20";

#[test]
fn des_fips81_ecb_cbc_cfb64() {
    // ECB (Table B1), run as three one-block CBC encryptions from a zero IV.
    let ecb = ["3fa40e8a984d4815", "6a271787ab8883f9", "893d51ec4b563b53"];
    let pt = h(FIPS81_PT);
    for (block, ct) in pt.chunks(8).zip(ecb) {
        check(Algorithm::Des, Mode::Cbc, FIPS81_KEY, "0000000000000000", &hex::encode(block), ct);
    }
    // CBC (Table C1).
    check(
        Algorithm::Des,
        Mode::Cbc,
        FIPS81_KEY,
        FIPS81_IV,
        FIPS81_PT,
        "e5c7cdde872bf27c 43e934008c389c0f 683788499a7c05f6",
    );
    // 64-bit CFB (Table D1), the feedback width the STAGE profile uses for DES.
    check(
        Algorithm::Des,
        Mode::Cfb,
        FIPS81_KEY,
        FIPS81_IV,
        FIPS81_PT,
        "f3096249c7f46e51 a69e839b1a92f784 03467133898ea622",
    );
}
