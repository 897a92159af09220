//! The file store's record and block format under arbitrary bytes, for the cargo-fuzz target
//! `filestore_records` (`fuzz/`) and the stable corpus replay test (`tests/it/fuzz_corpus.rs`).
//! A child of `filestore` so that it reaches the private codec without widening it.

use super::{
    block_header, decode, encode, pack, parse_header, scan, unpack, Cipher, EncryptionKey, Seal,
    Sealer, BLOCK_HDR, FLAG_PACKED, FLAG_SNAPPY, KIND_TRUNCATE,
};

/// Index of the block every input is read as.
const BLOCK: u32 = 1;

/// Decode arbitrary bytes as the file store does on open, and encode records built from them.
///
/// Input layout: byte 0 picks the mode (mod 3: plain, ChaCha20-Poly1305, AES-256-GCM with a
/// fixed key and a nonce from the byte; bit 2: write the block packed; bit 3: snappy), the
/// rest is the bytes. Checked:
/// - decoding the bytes as one record, as a block header, as a packed block file and as the
///   records of a block never panics;
/// - a record that decodes encodes back to exactly its bytes (the format has one encoding);
/// - a block scan keeps no more bytes than it was given, and the records it accepts sit where
///   it says, one after the other;
/// - records built from the bytes (split at `0xff`: kind, subject, headers, payload), encoded
///   into a block (packed and unpacked again in packed mode), scan back whole: the same
///   records, no problem reported, nothing cut.
pub fn filestore_records(data: &[u8]) {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let cipher = match mode % 3 {
        0 => None,
        1 => Some(Cipher::ChaCha20Poly1305),
        _ => Some(Cipher::Aes256Gcm),
    };
    let sealer = cipher.map(|cipher| {
        Sealer::new(&EncryptionKey {
            cipher,
            key: [7; 32],
        })
    });
    let nonce = [mode; 12];
    let seal = sealer.as_ref().map(|sealer| Seal { sealer, nonce });
    one_record(bytes, seal);
    let _ = parse_header(bytes, BLOCK);
    let _ = unpack(bytes, BLOCK, sealer.as_ref());
    let mut block = block_header(BLOCK, 1, 0, cipher.map_or(0, Cipher::flag), nonce).to_vec();
    block.extend_from_slice(bytes);
    arbitrary_block(&block, seal);
    round_trip(mode, bytes, sealer.as_ref(), nonce);
}

/// Arbitrary bytes as one record at offset `BLOCK_HDR`.
fn one_record(bytes: &[u8], seal: Option<Seal<'_>>) {
    let offset = BLOCK_HDR as u64;
    let Ok(r) = decode(bytes, BLOCK, offset, seal) else {
        return;
    };
    let mut again = Vec::new();
    encode(
        &mut again,
        r.kind,
        r.seq,
        r.ts,
        r.subject(),
        r.hdr(),
        r.msg(),
        seal.map(|s| (s, offset)),
    )
    .expect("a decoded record encodes");
    assert_eq!(
        again,
        &bytes[..r.len],
        "decode then encode changed the record"
    );
}

/// Arbitrary bytes after a valid block header, scanned as a block's records.
fn arbitrary_block(block: &[u8], seal: Option<Seal<'_>>) {
    let Ok((recs, _, keep)) = scan(block, BLOCK, seal) else {
        return;
    };
    assert!(keep <= block.len(), "kept {keep} of {} bytes", block.len());
    let mut end = BLOCK_HDR;
    for (off, r) in &recs {
        assert!(*off >= end, "record at {off} overlaps the one before");
        end = off + r.len;
        assert!(end <= keep, "record at {off} past the kept length {keep}");
        assert!(r.kind <= KIND_TRUNCATE);
    }
}

/// A record built from one piece of the input.
struct Built<'a> {
    kind: u8,
    subject: &'a [u8],
    hdr: &'a [u8],
    msg: &'a [u8],
}

/// Records built from the input, written as a block and read back.
fn round_trip(mode: u8, bytes: &[u8], sealer: Option<&Sealer>, nonce: [u8; 12]) {
    let built: Vec<Built<'_>> = bytes
        .split(|&b| b == 0xff)
        .filter_map(|piece| {
            let (&kind, body) = piece.split_first()?;
            let (subject, rest) = body.split_at(body.len() / 3);
            let (hdr, msg) = rest.split_at(rest.len() / 2);
            Some(Built {
                kind: kind % (KIND_TRUNCATE + 1),
                subject,
                hdr,
                msg,
            })
        })
        .collect();
    let packed = mode & 4 != 0;
    let mut flags = sealer.map_or(0, |s| s.cipher().flag());
    if packed {
        flags |= FLAG_PACKED;
        if mode & 8 != 0 {
            flags |= FLAG_SNAPPY;
        }
    }
    let header = block_header(BLOCK, 1, 0, flags, nonce);
    // A packed block holds plain records and is sealed whole; an unpacked one seals each
    // message record.
    let record_seal = sealer
        .filter(|_| !packed)
        .map(|sealer| Seal { sealer, nonce });
    let mut block = header.to_vec();
    for (i, b) in built.iter().enumerate() {
        let offset = block.len() as u64;
        encode(
            &mut block,
            b.kind,
            i as u64 + 1,
            i as i64,
            b.subject,
            b.hdr,
            b.msg,
            record_seal.map(|s| (s, offset)),
        )
        .expect("a small record encodes");
    }
    if packed {
        let file = pack(&header, &block[BLOCK_HDR..], sealer).expect("the block packs");
        let parsed = parse_header(&file, BLOCK).expect("a written header parses");
        assert_eq!(parsed.flags, flags);
        let unpacked = unpack(&file, BLOCK, sealer).expect("a packed block unpacks");
        assert_eq!(unpacked, block, "unpack(pack(block)) differs");
    }
    let seal = sealer.map(|sealer| Seal { sealer, nonce });
    let (recs, problems, keep) = scan(&block, BLOCK, seal).expect("a written block scans");
    assert!(
        problems.is_empty(),
        "written block has problems: {problems:?}"
    );
    assert_eq!(keep, block.len(), "written block cut");
    assert_eq!(recs.len(), built.len(), "records lost or invented");
    for (i, ((_, r), b)) in recs.iter().zip(&built).enumerate() {
        assert_eq!(r.kind, b.kind);
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.ts, i as i64);
        assert_eq!(r.subject(), b.subject);
        assert_eq!(r.hdr(), b.hdr);
        assert_eq!(r.msg(), b.msg);
    }
}
