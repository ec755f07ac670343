//! The records section of a batch, compressed and decompressed with the
//! four codecs of RecordBatch v2, framed as Kafka's own clients write and
//! read them:
//!
//! - gzip (1): a gzip stream (several members are read one after another,
//!   as Java's `GZIPInputStream` does).
//! - snappy (2): written with xerial's framing, as the Java client does (a
//!   16-byte header, then blocks of at most 32 KiB, each a big-endian u32
//!   length and a raw snappy block); read with that framing or as one raw
//!   snappy block (librdkafka writes raw).
//! - lz4 (3): the LZ4 frame format with independent 64 KiB blocks and no
//!   checksums but the header's, which is what Kafka's Java reader takes.
//! - zstd (4): one zstd frame, at level 3 (Kafka's default).
//!
//! **Invariant:** decompression never holds more than `max_bytes` of
//! output: every codec streams into a bounded buffer, and past the bound
//! the batch is refused as [`CodecError::DecompressedTooLarge`], whatever
//! the headers inside the compressed bytes claim.

use std::io::{Read, Write};

use crate::batch::Compression;
use crate::error::CodecError;

/// xerial's snappy stream header: magic, then version 1 and the oldest
/// compatible version 1 (big-endian i32s).
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// The part of the header that identifies the framing.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Uncompressed bytes per xerial block, as the Java client writes them.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// zstd's level, Kafka's default (`compression.zstd.level`).
const ZSTD_LEVEL: i32 = 3;
/// gzip's level, Kafka's default (`compression.gzip.level`).
const GZIP_LEVEL: u32 = 6;

/// Compresses a batch's records section with `codec`.
pub fn compress(codec: Compression, records: &[u8]) -> Result<Vec<u8>, CodecError> {
    let failed = |e: std::io::Error| CodecError::Compress {
        codec,
        reason: e.to_string(),
    };
    match codec {
        Compression::None => Ok(records.to_vec()),
        Compression::Gzip => {
            let out = Vec::with_capacity(records.len() / 2);
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            enc.write_all(records).map_err(failed)?;
            enc.finish().map_err(failed)
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(records.len() / 2 + XERIAL_HEADER.len());
            out.extend_from_slice(XERIAL_HEADER);
            let mut enc = snap::raw::Encoder::new();
            for block in records.chunks(XERIAL_BLOCK_BYTES) {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                out.resize(at + 4 + snap::raw::max_compress_len(block.len()), 0);
                let n = enc
                    .compress(block, &mut out[at + 4..])
                    .map_err(|e| failed(e.into()))?;
                out.truncate(at + 4 + n);
                out[at..at + 4].copy_from_slice(&(n as u32).to_be_bytes());
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let out = Vec::with_capacity(records.len() / 2);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            enc.write_all(records).map_err(failed)?;
            enc.finish().map_err(|e| failed(e.into()))
        }
        Compression::Zstd => zstd::bulk::compress(records, ZSTD_LEVEL).map_err(failed),
    }
}

/// Decompresses a batch's records section, refusing to produce more than
/// `max_bytes` (named `limit_name` in the error).
pub fn decompress(
    codec: Compression,
    compressed: &[u8],
    max_bytes: usize,
    limit_name: &'static str,
) -> Result<Vec<u8>, CodecError> {
    let bounded = |r: &mut dyn Read| read_bounded(r, codec, max_bytes, limit_name);
    match codec {
        Compression::None => Ok(compressed.to_vec()),
        Compression::Gzip => bounded(&mut flate2::read::MultiGzDecoder::new(compressed)),
        Compression::Snappy if compressed.starts_with(XERIAL_MAGIC) => {
            xerial(compressed, max_bytes, limit_name)
        }
        Compression::Snappy => {
            let mut out = Vec::new();
            raw_snappy(compressed, &mut out, max_bytes, limit_name)?;
            Ok(out)
        }
        Compression::Lz4 => {
            let out = bounded(&mut lz4_flex::frame::FrameDecoder::new(compressed))?;
            // The decoder takes a frame cut inside its end mark as whole.
            match lz4_frame_len(compressed) {
                Some(n) if n == compressed.len() => Ok(out),
                Some(n) => Err(corrupt(
                    codec,
                    format!("{} bytes follow the LZ4 frame", compressed.len() - n),
                )),
                None => Err(corrupt(codec, "the LZ4 frame is cut short")),
            }
        }
        Compression::Zstd => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(compressed)
                .map_err(|e| corrupt(codec, e))?
                .single_frame();
            let out = bounded(&mut dec)?;
            // A frame that ends early reads as a short stream; a whole one
            // says how long it is.
            match zstd::zstd_safe::get_frame_content_size(compressed) {
                Ok(Some(n)) if n != out.len() as u64 => Err(CodecError::Decompress {
                    codec,
                    reason: format!("the frame says {n} bytes but holds {}", out.len()),
                }),
                _ => Ok(out),
            }
        }
    }
}

/// The length of the LZ4 frame at the start of `b`, read from its
/// descriptor and block sizes, or `None` if it is cut short.
fn lz4_frame_len(b: &[u8]) -> Option<usize> {
    let flg = *b.get(4)?;
    let block_checksums = flg & 0x10 != 0;
    let content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    let dict_id = flg & 0x01 != 0;
    // Magic, FLG, BD, the optional fields, and the header checksum.
    let mut pos = 4 + 2 + if content_size { 8 } else { 0 } + if dict_id { 4 } else { 0 } + 1;
    loop {
        let size = u32::from_le_bytes(b.get(pos..pos + 4)?.try_into().ok()?);
        pos += 4;
        if size == 0 {
            break;
        }
        pos += (size & 0x7FFF_FFFF) as usize + if block_checksums { 4 } else { 0 };
    }
    pos += if content_checksum { 4 } else { 0 };
    (pos <= b.len()).then_some(pos)
}

fn corrupt(codec: Compression, e: impl std::fmt::Display) -> CodecError {
    CodecError::Decompress {
        codec,
        reason: e.to_string(),
    }
}

fn read_bounded(
    r: &mut dyn Read,
    codec: Compression,
    max_bytes: usize,
    limit_name: &'static str,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    r.take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > max_bytes {
        return Err(CodecError::DecompressedTooLarge {
            codec,
            limit_name,
            limit: max_bytes,
        });
    }
    Ok(out)
}

/// Reads xerial's framing: the header, then length-prefixed raw blocks.
fn xerial(input: &[u8], max_bytes: usize, limit_name: &'static str) -> Result<Vec<u8>, CodecError> {
    let bad = |reason: String| CodecError::Decompress {
        codec: Compression::Snappy,
        reason,
    };
    if input.len() < XERIAL_HEADER.len() {
        return Err(bad(format!(
            "xerial header needs {} bytes, {} given",
            XERIAL_HEADER.len(),
            input.len()
        )));
    }
    let mut rest = &input[XERIAL_HEADER.len()..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(bad("a block length is cut short".into()));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > tail.len() {
            return Err(bad(format!("a block of {len} bytes, {} given", tail.len())));
        }
        raw_snappy(&tail[..len], &mut out, max_bytes, limit_name)?;
        rest = &tail[len..];
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its stated length
/// against what `max_bytes` leaves before reserving anything.
fn raw_snappy(
    block: &[u8],
    out: &mut Vec<u8>,
    max_bytes: usize,
    limit_name: &'static str,
) -> Result<(), CodecError> {
    let codec = Compression::Snappy;
    let n = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    if n > max_bytes - out.len() {
        return Err(CodecError::DecompressedTooLarge {
            codec,
            limit_name,
            limit: max_bytes,
        });
    }
    let at = out.len();
    out.resize(at + n, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[at..])
        .map_err(|e| corrupt(codec, e))?;
    out.truncate(at + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::batch::{
        self, BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT, BATCH_HEADER_LEN, Batch, Filtered, compute_crc,
        field,
    };
    use crate::record::{BatchBuilder, Header};

    const MAX: usize = BATCH_DECOMPRESSED_BYTES_MAX_DEFAULT;

    /// Records that compress like real ones: JSON-ish text.
    fn builder(n: usize) -> BatchBuilder {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            let value = format!(
                r#"{{"id":{i},"user":"user-{}","event":"click","ok":true}}"#,
                i % 7
            );
            let key = format!("k{}", i % 5);
            b.push(
                1_000 + i as i64,
                Some(key.as_bytes()),
                Some(value.as_bytes()),
                &[Header::new("h", Some(b"v".as_slice()))],
            );
        }
        b
    }

    /// `batch` with its records section replaced by `body` (length and
    /// CRC fixed up), as a producer that sent exactly those bytes.
    fn with_body(batch: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = batch[..BATCH_HEADER_LEN].to_vec();
        out.extend_from_slice(body);
        let codec = batch::BatchHeader::parse(batch)
            .unwrap()
            .attributes
            .compression()
            .unwrap();
        batch::finish_header(&mut out, codec);
        out
    }

    #[test]
    fn every_codec_round_trips_through_validation_and_records() {
        let plain = builder(200).finish();
        let want = Batch::decode_all(plain.clone()).unwrap()[0]
            .decode_records()
            .unwrap();
        for codec in Compression::ALL {
            let bytes = builder(200).finish_compressed(codec).unwrap();
            if codec != Compression::None {
                assert!(
                    bytes.len() < plain.len() / 2,
                    "{codec:?}: {} of {}",
                    bytes.len(),
                    plain.len()
                );
            }
            let v = batch::validate(&bytes, MAX).unwrap();
            assert_eq!(v.header.attributes.compression().unwrap(), codec);
            assert_eq!(v.record_count, 200);
            // Recovery's check: header and CRC, no decompression.
            batch::validate_stored(&bytes).unwrap();
            let got = Batch::decode_all(bytes.clone()).unwrap()[0]
                .decode_records()
                .unwrap();
            assert_eq!(got, want, "{codec:?}");
            // Compaction keeps the codec and the kept records.
            let Filtered::Rewritten(kept) =
                batch::filter(&bytes, MAX, |r| r.offset % 3 == 0).unwrap()
            else {
                panic!("{codec:?}: expected a rewrite");
            };
            let v = batch::validate_stored(&kept).unwrap();
            assert_eq!(v.header.attributes.compression().unwrap(), codec);
            let offsets: Vec<i64> = Batch::decode_all(kept).unwrap()[0]
                .records()
                .map(|r| r.unwrap().offset)
                .collect();
            assert_eq!(
                offsets,
                (0..200).step_by(3).collect::<Vec<i64>>(),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn recompressing_keeps_every_field_but_the_codec() {
        let want = Batch::decode_all(builder(60).finish()).unwrap()[0]
            .decode_records()
            .unwrap();
        for from in Compression::ALL {
            let mut b2 = builder(60);
            b2.producer(42, 3, 1_000);
            let original = b2.finish_compressed(from).unwrap();
            for to in Compression::ALL {
                let out = batch::recompress(&original, to, MAX).unwrap();
                let v = batch::validate(&out, MAX).unwrap();
                let (h, o) = (v.header, batch::BatchHeader::parse(&original).unwrap());
                assert_eq!(
                    h.attributes.compression().unwrap(),
                    to,
                    "{from:?} to {to:?}"
                );
                assert_eq!(
                    (
                        h.producer_id,
                        h.producer_epoch,
                        h.base_sequence,
                        h.base_timestamp,
                        h.max_timestamp
                    ),
                    (
                        o.producer_id,
                        o.producer_epoch,
                        o.base_sequence,
                        o.base_timestamp,
                        o.max_timestamp
                    )
                );
                let got = Batch::decode_all(Bytes::from(out)).unwrap()[0]
                    .decode_records()
                    .unwrap();
                assert_eq!(got, want, "{from:?} to {to:?}");
            }
        }
    }

    #[test]
    fn raw_snappy_is_read_as_well_as_xerial() {
        let plain = builder(50).finish();
        let body = &plain[BATCH_HEADER_LEN..];
        let raw = snap::raw::Encoder::new().compress_vec(body).unwrap();
        let mut batch = with_body(&plain, &raw);
        batch[field::ATTRIBUTES + 1] |= Compression::Snappy.id();
        let crc = compute_crc(&batch);
        batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(batch::validate(&batch, MAX).unwrap().record_count, 50);
    }

    #[test]
    fn a_bomb_is_refused_by_the_limit_without_holding_its_output() {
        // 64 MiB of zeros: a few KiB compressed with any codec.
        let zeros = vec![0u8; 64 << 20];
        for codec in &Compression::ALL[1..] {
            let small = compress(*codec, &zeros).unwrap();
            assert!(small.len() < 4 << 20, "{codec:?}: {}", small.len());
            let err =
                decompress(*codec, &small, 1 << 20, "batch_decompressed_bytes_max").unwrap_err();
            assert_eq!(
                err,
                CodecError::DecompressedTooLarge {
                    codec: *codec,
                    limit_name: "batch_decompressed_bytes_max",
                    limit: 1 << 20
                }
            );
            assert!(
                err.to_string().contains("batch_decompressed_bytes_max"),
                "{err}"
            );
        }
    }

    #[test]
    fn truncated_and_garbage_bodies_are_refused() {
        let plain = builder(100).finish();
        for codec in &Compression::ALL[1..] {
            let whole = builder(100).finish_compressed(*codec).unwrap();
            let body = &whole[BATCH_HEADER_LEN..];
            for cut in 0..body.len() {
                let cut_batch = with_body(&whole, &body[..cut]);
                assert!(
                    batch::validate(&cut_batch, MAX).is_err(),
                    "{codec:?} cut to {cut} of {} bytes was accepted",
                    body.len()
                );
            }
            let mut garbage = with_body(&plain, &[0xA5; 300]);
            garbage[field::ATTRIBUTES + 1] |= codec.id();
            let crc = compute_crc(&garbage);
            garbage[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
            assert!(
                batch::validate(&garbage, MAX).is_err(),
                "{codec:?} garbage accepted"
            );
        }
    }
}
