use std::io::Cursor;

use image::GenericImageView;

use super::*;
use crate::media::testutil::*;

fn media(t: MediaType, bytes: Vec<u8>) -> Media {
    Media {
        id: MediaId::of(&bytes),
        media_type: t,
        bytes: Bytes::from(bytes),
    }
}

/// ~400 KB PNG: 480×360 noisy picture.
fn big_png() -> Media {
    media(
        MediaType::Png,
        png(&DynamicImage::ImageRgb8(picture(480, 360, 24, 3))),
    )
}

/// ~400 KB JPEG: 680×510 noisy picture at quality 95.
fn big_jpeg() -> Media {
    media(
        MediaType::Jpeg,
        jpeg(&DynamicImage::ImageRgb8(picture(680, 510, 24, 5)), 95),
    )
}

fn decode(bytes: &[u8]) -> DynamicImage {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .unwrap()
        .decode()
        .expect("fitted output decodes")
}

/// Checks proportional scaling within rounding.
fn assert_proportional(orig: (u32, u32), got: (u32, u32)) {
    let r0 = f64::from(orig.0) / f64::from(orig.1);
    let r1 = f64::from(got.0) / f64::from(got.1);
    let tolerance = 1.0 / f64::from(got.1.min(got.0)) * 2.0 + 0.005;
    assert!(
        (r0 / r1 - 1.0).abs() <= tolerance,
        "aspect ratio {orig:?} → {got:?}"
    );
    assert!(got.0 <= orig.0 && got.1 <= orig.1);
}

#[test]
fn already_fits_is_untouched() {
    let m = media(MediaType::Mp4, b"\0\0\0\x10ftypisom\0\0\0\0".to_vec());
    let f = fit(&m, 1000).unwrap();
    assert!(!f.changed);
    assert_eq!(f.bytes, m.bytes);
    assert_eq!(f.media_type, MediaType::Mp4);
}

#[test]
fn noisy_png_fits_100k_and_30k() {
    let m = big_png();
    assert!(
        (350_000..460_000).contains(&m.bytes.len()),
        "{}",
        m.bytes.len()
    );
    for limit in [100_000, 30_000] {
        let f = fit(&m, limit).unwrap();
        eprintln!(
            "PNG {} B → {} {} B at limit {limit}",
            m.bytes.len(),
            f.media_type,
            f.bytes.len()
        );
        assert!(f.changed && !f.animation_dropped);
        assert!(f.bytes.len() <= limit);
        assert_eq!(f.media_type, MediaType::Jpeg, "a noisy photo goes JPEG");
        let img = decode(&f.bytes);
        eprintln!("   {:?}", img.dimensions());
        assert_proportional((480, 360), img.dimensions());
        // Deterministic.
        assert_eq!(fit(&m, limit).unwrap(), f);
    }
}

#[test]
fn noisy_jpeg_fits_100k_and_30k() {
    let m = big_jpeg();
    assert!(
        (350_000..460_000).contains(&m.bytes.len()),
        "{}",
        m.bytes.len()
    );
    let mut dims = Vec::new();
    for limit in [100_000, 30_000] {
        let f = fit(&m, limit).unwrap();
        eprintln!(
            "JPEG {} B → {} {} B at limit {limit}",
            m.bytes.len(),
            f.media_type,
            f.bytes.len()
        );
        assert!(f.changed);
        assert!(f.bytes.len() <= limit);
        assert_eq!(f.media_type, MediaType::Jpeg);
        let img = decode(&f.bytes);
        eprintln!("   {:?}", img.dimensions());
        assert_proportional((680, 510), img.dimensions());
        dims.push(img.dimensions());
        assert_eq!(fit(&m, limit).unwrap(), f);
    }
    assert!(
        dims[1].0 <= dims[0].0,
        "a smaller limit never gives a bigger image"
    );
}

#[test]
fn png_recompression_keeps_png_when_it_suffices() {
    // A flat picture stored with no compression: recompressing wins.
    let img = DynamicImage::ImageRgb8(picture(200, 150, 0, 1));
    let mut raw = Vec::new();
    PngEncoder::new_with_quality(&mut raw, CompressionType::Uncompressed, PngFilter::NoFilter)
        .write_image(img.as_bytes(), 200, 150, img.color().into())
        .unwrap();
    let m = media(MediaType::Png, raw);
    let limit = m.bytes.len() / 2;
    let f = fit(&m, limit).unwrap();
    assert_eq!(f.media_type, MediaType::Png);
    assert!(f.bytes.len() <= limit);
    assert_eq!(decode(&f.bytes).dimensions(), (200, 150));
}

#[test]
fn transparency_is_flattened_on_white() {
    // Left half transparent, right half opaque noisy red.
    let mut rng = Rng::new(9);
    let img = RgbaImage::from_fn(300, 200, |x, _| {
        if x < 150 {
            image::Rgba([0, 0, 0, 0])
        } else {
            image::Rgba([200, (rng.next() % 256) as u8, (rng.next() % 256) as u8, 255])
        }
    });
    let m = media(MediaType::Png, png(&DynamicImage::ImageRgba8(img)));
    let f = fit(&m, m.bytes.len() / 3).unwrap();
    assert_eq!(f.media_type, MediaType::Jpeg);
    let out = decode(&f.bytes).into_rgb8();
    let p = out.get_pixel(5, 5).0;
    assert!(
        p.iter().all(|&c| c > 240),
        "transparent became white: {p:?}"
    );
}

/// A minimal EXIF (TIFF little-endian) block with one Orientation entry.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut e = b"II*\0".to_vec();
    e.extend_from_slice(&8u32.to_le_bytes()); // IFD offset
    e.extend_from_slice(&1u16.to_le_bytes()); // one entry
    e.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    e.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    e.extend_from_slice(&1u32.to_le_bytes()); // count
    e.extend_from_slice(&value.to_le_bytes());
    e.extend_from_slice(&[0, 0]);
    e.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    e
}

#[test]
fn exif_orientation_is_applied() {
    // Stored 400×200 with "rotate 90° clockwise": shown 200×400.
    let img = DynamicImage::ImageRgb8(picture(400, 200, 24, 2));
    let mut out = Vec::new();
    let mut enc = JpegEncoder::new_with_quality(&mut out, 95);
    enc.set_exif_metadata(exif_orientation(6)).unwrap();
    enc.encode_image(&img).unwrap();
    let m = media(MediaType::Jpeg, out);
    let f = fit(&m, m.bytes.len() / 2).unwrap();
    let (w, h) = decode(&f.bytes).dimensions();
    assert!(h > w, "upright: {w}×{h}");
    assert_proportional((200, 400), (w, h));
}

#[test]
fn animated_gif_keeps_animation_when_it_can() {
    let g = animated_gif(200, 150, 8, 12);
    let m = media(MediaType::Gif, g);
    let limit = m.bytes.len() * 6 / 10;
    let f = fit(&m, limit).unwrap();
    eprintln!(
        "GIF {} B → {} {} B at limit {limit}",
        m.bytes.len(),
        f.media_type,
        f.bytes.len()
    );
    assert!(f.changed && !f.animation_dropped);
    assert_eq!(f.media_type, MediaType::Gif);
    assert!(f.bytes.len() <= limit);
    let (frames, w, h, delay) = gif_frames(&f.bytes);
    eprintln!("   {frames} frames {w}×{h}");
    assert_eq!(frames, 8);
    assert_eq!(delay, 100);
    assert_proportional((200, 150), (w, h));
    assert_eq!(fit(&m, limit).unwrap(), f);
}

#[test]
fn animated_gif_falls_back_to_a_still_jpeg() {
    let g = animated_gif(200, 150, 8, 12);
    let m = media(MediaType::Gif, g);
    let limit = 6_000;
    let f = fit(&m, limit).unwrap();
    eprintln!(
        "GIF {} B → {} {} B at limit {limit}",
        m.bytes.len(),
        f.media_type,
        f.bytes.len()
    );
    assert!(f.changed && f.animation_dropped);
    assert_eq!(f.media_type, MediaType::Jpeg);
    assert!(f.bytes.len() <= limit);
    let img = decode(&f.bytes);
    eprintln!("   {:?}", img.dimensions());
    assert_proportional((200, 150), img.dimensions());
}

#[test]
fn video_text_and_smil_cannot_fit() {
    for (t, bytes) in [
        (MediaType::Mp4, {
            let mut v = b"\0\0\0\x10ftypisom\0\0\0\0".to_vec();
            v.extend(Rng::new(1).bytes(5000));
            v
        }),
        (MediaType::Text, "hello ".repeat(1000).into_bytes()),
        (
            MediaType::Smil,
            format!("<smil>{}</smil>", " ".repeat(5000)).into_bytes(),
        ),
    ] {
        let m = media(t, bytes);
        match fit(&m, 1000) {
            Err(MediaError::CannotFit {
                media_type, max, ..
            }) => {
                assert_eq!(media_type, t);
                assert_eq!(max, 1000);
            }
            other => panic!("{t}: {other:?}"),
        }
    }
}

#[test]
fn broken_images_and_tiny_limits_are_errors_not_panics() {
    let mut rng = Rng::new(4);
    let mut cases = Vec::new();
    // Signatures followed by garbage, and truncated real images.
    for (t, sig) in [
        (MediaType::Png, &b"\x89PNG\r\n\x1a\n"[..]),
        (MediaType::Jpeg, &b"\xff\xd8\xff"[..]),
        (MediaType::Gif, &b"GIF89a"[..]),
    ] {
        let mut v = sig.to_vec();
        v.extend(rng.bytes(3000));
        cases.push((t, v));
    }
    let p = big_png();
    cases.push((MediaType::Png, p.bytes[..p.bytes.len() / 2].to_vec()));
    let g = animated_gif(64, 48, 3, 12);
    cases.push((MediaType::Gif, g[..g.len() * 2 / 3].to_vec()));
    // A GIF header claiming 65535×65535.
    let mut huge = b"GIF89a\xff\xff\xff\xff\x00\x00\x00".to_vec();
    huge.extend(rng.bytes(2000));
    cases.push((MediaType::Gif, huge));
    for (t, bytes) in cases {
        let m = media(t, bytes);
        let r = fit(&m, 500);
        assert!(matches!(r, Err(MediaError::CannotFit { .. })), "{t}: {r:?}");
    }
    // A real image, a limit no JPEG can meet.
    let m = media(
        MediaType::Png,
        png(&DynamicImage::ImageRgb8(picture(64, 48, 24, 1))),
    );
    assert!(matches!(fit(&m, 100), Err(MediaError::CannotFit { .. })));
}

#[test]
fn fitter_caches_per_media_and_limit() {
    let fitter = Fitter::new();
    let m = media(
        MediaType::Png,
        png(&DynamicImage::ImageRgb8(picture(160, 120, 24, 8))),
    );
    let limit = m.bytes.len() / 4;
    let a = fitter.fit(&m, limit).unwrap();
    let b = fitter.fit(&m, limit).unwrap();
    assert_eq!(a, b);
    assert_eq!(fitter.computed(), 1);
    // A limit a little lower (a longer text in the envelope) shares the
    // entry; the output is within both.
    let d = fitter.fit(&m, limit - limit / 100).unwrap();
    assert_eq!(fitter.computed(), 1);
    assert!(d.bytes.len() <= limit - limit / 100);
    // Another limit is another entry.
    let c = fitter.fit(&m, limit / 2).unwrap();
    assert!(c.bytes.len() <= limit / 2);
    assert_eq!(fitter.computed(), 2);
    // Within the limit: not computed, not cached.
    assert!(!fitter.fit(&m, m.bytes.len()).unwrap().changed);
    assert_eq!(fitter.computed(), 2);
    // Errors are cached too.
    let v = media(MediaType::Text, vec![b'a'; 100]);
    assert!(fitter.fit(&v, 10).is_err());
    assert!(fitter.fit(&v, 10).is_err());
    assert_eq!(fitter.computed(), 3);
}

#[test]
fn fitter_computes_once_under_concurrency() {
    let fitter = Fitter::new();
    let m = media(
        MediaType::Png,
        png(&DynamicImage::ImageRgb8(picture(160, 120, 24, 8))),
    );
    let limit = m.bytes.len() / 4;
    let results: Vec<Fitted> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| fitter.fit(&m, limit).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(fitter.computed(), 1);
}

#[test]
fn fitter_cache_is_bounded() {
    // Room for about one result: alternating media recompute.
    let m1 = media(
        MediaType::Png,
        png(&DynamicImage::ImageRgb8(picture(120, 90, 24, 1))),
    );
    let m2 = media(
        MediaType::Png,
        png(&DynamicImage::ImageRgb8(picture(120, 90, 24, 2))),
    );
    let limit = m1.bytes.len() / 3;
    let fitter = Fitter::with_capacity(limit + 2 * ENTRY_OVERHEAD);
    fitter.fit(&m1, limit).unwrap();
    fitter.fit(&m2, limit).unwrap();
    fitter.fit(&m1, limit).unwrap();
    assert_eq!(fitter.computed(), 3);
    let c = fitter.cache.lock();
    assert!(c.bytes <= c.cap);
    assert_eq!(c.map.len(), c.order.len());
}

/// The sample files shipped for the demo: each small, of its type, and
/// decoding (the GIF animated).
#[test]
fn shipped_samples() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/media");
    for (name, t) in [
        ("sample.png", MediaType::Png),
        ("sample.jpg", MediaType::Jpeg),
        ("animated.gif", MediaType::Gif),
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert!(bytes.len() < 50_000, "{name}: {} bytes", bytes.len());
        assert_eq!(crate::media::sniff(&bytes), Some(t), "{name}");
        decode(&bytes);
    }
    let (frames, ..) = gif_frames(&std::fs::read(dir.join("animated.gif")).unwrap());
    assert!(frames >= 3);
}

/// Writes the samples under `tests/data/media/`; run with `--ignored` to
/// regenerate them.
#[test]
#[ignore]
fn generate_samples() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/media");
    std::fs::create_dir_all(&dir).unwrap();
    let png_bytes = png(&DynamicImage::ImageRgb8(picture(240, 180, 0, 11)));
    let jpg_bytes = jpeg(&DynamicImage::ImageRgb8(picture(320, 240, 6, 12)), 82);
    let gif_bytes = animated_gif(120, 90, 6, 0);
    for (name, b) in [
        ("sample.png", &png_bytes),
        ("sample.jpg", &jpg_bytes),
        ("animated.gif", &gif_bytes),
    ] {
        eprintln!("{name}: {} bytes", b.len());
        std::fs::write(dir.join(name), b).unwrap();
    }
}

#[test]
fn output_never_exceeds_the_limit() {
    let m = media(
        MediaType::Png,
        png(&DynamicImage::ImageRgb8(picture(160, 120, 24, 21))),
    );
    let mut limit = 1_000;
    while limit < m.bytes.len() {
        match fit(&m, limit) {
            Ok(f) => {
                assert!(f.bytes.len() <= limit, "{} > {limit}", f.bytes.len());
                let (w, h) = decode(&f.bytes).dimensions();
                assert_proportional((160, 120), (w, h));
            }
            Err(MediaError::CannotFit { .. }) => assert!(limit < 2_000, "{limit}"),
            Err(e) => panic!("{e}"),
        }
        limit = limit * 3 / 2;
    }
}

#[test]
fn limit_buckets() {
    assert_eq!(bucket(0), 0);
    assert_eq!(bucket(63), 63);
    assert_eq!(bucket(300_000), 294_912);
    assert_eq!(bucket(1_048_576), 1_048_576);
    for limit in [64, 65, 1000, 99_999, 300_001, 614_400, usize::MAX] {
        let b = bucket(limit);
        assert!(
            b <= limit && (limit - b) as f64 <= limit as f64 * 0.032,
            "{limit}"
        );
    }
}
