//! Content fitting: making media fit a carrier's size limit, as hosted MMS
//! APIs do and gateways usually don't.
//!
//! [`fit()`] leaves media that already fits untouched. Over the limit:
//!
//! - **JPEG, PNG**: decoded (bounded: 8192 px a side, 128 MiB), EXIF
//!   orientation applied (the output carries no EXIF, so a phone photo would
//!   otherwise turn sideways), then the first of these that fits wins:
//!   1. a PNG re-compressed at full size (PNG input within 4× the limit:
//!      an unoptimised PNG, a screenshot or logo, keeps its format);
//!   2. JPEG at full size, quality 85, 70, 55, 40 (skipped when quality 85
//!      is over 3× the limit: quality alone won't get there);
//!   3. JPEG quality 75, scaled down by `sqrt(limit / size)` × 0.93 of the
//!      last attempt (at least ×0.9 per step, Triangle filter, aspect ratio
//!      kept), up to 12 steps.
//!
//!   Transparency is flattened onto white for JPEG.
//! - **GIF**: the frames are scaled together and re-encoded as a GIF (frame
//!   delays and loop count kept), starting from `sqrt(limit / size)` × 0.9
//!   and shrinking by the measured overshoot; an attempt stops as soon as its
//!   output passes the limit. Below a quarter of the original size, after 4
//!   attempts, or for animations too big to re-encode (over 1,000 frames or
//!   100 Mpx in total), the first frame becomes a still JPEG as above, and
//!   [`Fitted::animation_dropped`] says so.
//! - **MP4, text, SMIL**: [`MediaError::CannotFit`].
//!
//! Every step is deterministic (same input, same limit, same bytes out),
//! and the output is checked against the limit before it is returned. The
//! work is CPU-bound (tens to hundreds of milliseconds for a phone photo):
//! async callers use `spawn_blocking`. [`Fitter`] caches results per (media,
//! limit bucket) and computes each once even under concurrent calls, so a
//! campaign to a million recipients encodes its image once per carrier
//! limit, even when the budget left for media varies with each message's
//! text.
//!
//! The limit is for the content part alone; MM7 callers subtract the SOAP
//! envelope and MIME headers from the carrier's limit first (DOMAIN.md:
//! "the limit includes the SOAP part and MIME headers").

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Cursor, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::imageops::FilterType;
use image::metadata::LoopCount;
use image::{
    AnimationDecoder, DynamicImage, Frame, GrayImage, ImageDecoder, ImageEncoder, ImageFormat,
    ImageReader, Limits, RgbImage, RgbaImage,
};
use parking_lot::Mutex;

use super::MediaError;
use super::sniff::MediaType;
use super::store::{Media, MediaId};

const TARGET: &str = "sluice::media::fit";

/// Largest width or height decoded.
const MAX_SIDE: u32 = 8192;
/// Largest decoder allocation.
const MAX_ALLOC: u64 = 128 * 1024 * 1024;
/// JPEG qualities tried at full size.
const QUALITIES: [u8; 4] = [85, 70, 55, 40];
/// JPEG quality used while scaling.
const SCALE_QUALITY: u8 = 75;
/// Scaling steps for a still image.
const MAX_SCALE_STEPS: usize = 12;
/// Scaling stops once the output uses this share of the limit.
const FILL_PERCENT: usize = 85;
/// GIF encoder speed (1 best … 30 fastest); 10 is the gif crate's default.
const GIF_SPEED: i32 = 10;
/// Animated attempts before the still fallback.
const MAX_GIF_ATTEMPTS: usize = 4;
/// Smallest linear scale an animation is kept at.
const MIN_GIF_SCALE: f64 = 0.25;
/// Animations with more frames go straight to the still fallback.
const MAX_GIF_FRAMES: usize = 1000;
/// Animations with more pixels in total (all frames) too.
const MAX_GIF_PIXELS: u64 = 100_000_000;

/// The outcome of [`fit()`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    /// The content to send (the original bytes when `changed` is false).
    pub bytes: Bytes,
    /// Its type (a PNG or GIF may have become a JPEG).
    pub media_type: MediaType,
    /// Whether the content was re-encoded or scaled.
    pub changed: bool,
    /// Whether an animated GIF was replaced by a still image of its first
    /// frame.
    pub animation_dropped: bool,
}

/// Makes `media` fit in `max_bytes` (see the module doc). Blocking and
/// uncached; prefer [`Fitter::fit`].
///
/// # Errors
/// [`MediaError::CannotFit`] when the media is over the limit and is not an
/// image, does not decode, or cannot get under the limit.
pub fn fit(media: &Media, max_bytes: usize) -> Result<Fitted, MediaError> {
    let len = media.bytes.len() as u64;
    if media.bytes.len() <= max_bytes {
        return Ok(Fitted {
            bytes: media.bytes.clone(),
            media_type: media.media_type,
            changed: false,
            animation_dropped: false,
        });
    }
    let cannot = |reason: &str| MediaError::CannotFit {
        media_type: media.media_type,
        len,
        max: max_bytes as u64,
        reason: reason.to_owned(),
    };
    if !media.media_type.is_image() {
        return Err(cannot("only images can be reduced"));
    }
    let limit = max_bytes;
    // The codecs are not supposed to panic on any input; if one does, the
    // media cannot be fitted, and the gateway goes on.
    let outcome = catch_unwind(AssertUnwindSafe(|| match media.media_type {
        MediaType::Gif => fit_gif(&media.bytes, limit),
        other => fit_image(&media.bytes, other, limit).map(|(b, t)| (b, t, false)),
    }));
    let (bytes, media_type, animation_dropped) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(reason)) => return Err(cannot(&reason)),
        Err(_) => {
            tracing::error!(target: TARGET, id = %media.id, "image codec panicked");
            return Err(cannot("image codec failed"));
        }
    };
    if bytes.len() > limit {
        // Every path checks; this is the last word.
        return Err(cannot("no encoding under the limit"));
    }
    tracing::debug!(
        target: TARGET,
        id = %media.id,
        from = len,
        to = bytes.len(),
        max = max_bytes,
        %media_type,
        animation_dropped,
        "media fitted"
    );
    Ok(Fitted {
        bytes: Bytes::from(bytes),
        media_type,
        changed: true,
        animation_dropped,
    })
}

// === still images ===

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_ALLOC);
    l
}

fn decode_still(bytes: &[u8], t: MediaType) -> Result<DynamicImage, String> {
    let format = match t {
        MediaType::Jpeg => ImageFormat::Jpeg,
        MediaType::Png => ImageFormat::Png,
        MediaType::Gif => ImageFormat::Gif,
        _ => return Err("not an image".into()),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits());
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("does not decode: {e}"))?;
    let orientation = decoder.orientation().ok();
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| format!("does not decode: {e}"))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img)
}

/// Fits a JPEG or PNG: the bytes and their type.
fn fit_image(bytes: &[u8], t: MediaType, limit: usize) -> Result<(Vec<u8>, MediaType), String> {
    let img = decode_still(bytes, t)?;
    if t == MediaType::Png && bytes.len() <= limit.saturating_mul(4) {
        let png = encode_png(&img)?;
        if png.len() <= limit {
            return Ok((png, MediaType::Png));
        }
    }
    fit_jpeg(img, limit).map(|b| (b, MediaType::Jpeg))
}

/// JPEG ladder then scaling (module doc, steps 2 and 3).
fn fit_jpeg(img: DynamicImage, limit: usize) -> Result<Vec<u8>, String> {
    let img = flatten(img);
    let (w, h) = (img.width(), img.height());
    let mut last = encode_jpeg(&img, QUALITIES[0])?;
    if last.len() <= limit {
        return Ok(last);
    }
    if last.len() <= limit.saturating_mul(3) {
        for q in &QUALITIES[1..] {
            last = encode_jpeg(&img, *q)?;
            if last.len() <= limit {
                return Ok(last);
            }
        }
    }
    // The largest scale whose JPEG fits: estimate from the last size, then
    // bisect between the largest that fits (lo) and the smallest that does
    // not (hi) until the output uses most of the limit.
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    let mut best: Option<Vec<u8>> = None;
    let mut scale = (limit as f64 / last.len() as f64).sqrt() * 0.93;
    for _ in 0..MAX_SCALE_STEPS {
        scale = scale.clamp(f64::MIN_POSITIVE, 0.9 * hi);
        if best.is_some() && scale <= lo {
            scale = (lo * hi).sqrt();
        }
        let (nw, nh) = scaled(w, h, scale);
        if best.is_some() && (nw, nh) == scaled(w, h, lo) {
            break;
        }
        let small = img.resize_exact(nw, nh, FilterType::Triangle);
        let out = encode_jpeg(&small, SCALE_QUALITY)?;
        let size = out.len();
        if size <= limit {
            lo = scale;
            best = Some(out);
            if size >= limit / 100 * FILL_PERCENT || hi / lo < 1.05 {
                break;
            }
            // Aim just under the limit, but stay below hi.
            scale = (scale * (limit as f64 / size as f64).sqrt() * 0.97)
                .min((lo * hi).sqrt().max(lo * 1.05));
        } else {
            hi = scale;
            if (nw, nh) == (1, 1) {
                let out = encode_jpeg(&small, QUALITIES[QUALITIES.len() - 1])?;
                if out.len() <= limit {
                    return Ok(out);
                }
                break;
            }
            scale = if best.is_some() {
                (lo * hi).sqrt()
            } else {
                scale * ((limit as f64 / size as f64).sqrt() * 0.93).min(0.9)
            };
        }
    }
    best.ok_or_else(|| "no encoding under the limit".into())
}

/// Dimensions at `scale`, aspect ratio kept, at least 1×1.
fn scaled(w: u32, h: u32, scale: f64) -> (u32, u32) {
    let s = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, v.max(1));
    (s(w), s(h))
}

/// RGB or grey, transparency flattened onto white: what JPEG can hold.
fn flatten(img: DynamicImage) -> DynamicImage {
    let grey = !img.color().has_color();
    if !img.color().has_alpha() {
        return if grey {
            DynamicImage::ImageLuma8(img.into_luma8())
        } else {
            DynamicImage::ImageRgb8(img.into_rgb8())
        };
    }
    let rgba = img.into_rgba8();
    let over_white = |c: u8, a: u8| {
        ((u32::from(c) * u32::from(a) + 255 * (255 - u32::from(a)) + 127) / 255) as u8
    };
    if grey {
        let (w, h) = rgba.dimensions();
        DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| {
            let p = rgba.get_pixel(x, y).0;
            image::Luma([over_white(p[0], p[3])])
        }))
    } else {
        let (w, h) = rgba.dimensions();
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            let p = rgba.get_pixel(x, y).0;
            image::Rgb([
                over_white(p[0], p[3]),
                over_white(p[1], p[3]),
                over_white(p[2], p[3]),
            ])
        }))
    }
}

fn encode_jpeg(img: &DynamicImage, quality: u8) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .map_err(|e| format!("JPEG encoding failed: {e}"))?;
    Ok(out)
}

fn encode_png(img: &DynamicImage) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, PngFilter::Adaptive)
        .write_image(
            img.as_bytes(),
            img.width(),
            img.height(),
            img.color().into(),
        )
        .map_err(|e| format!("PNG encoding failed: {e}"))?;
    Ok(out)
}

// === GIF ===

fn gif_decoder(bytes: &[u8]) -> Result<GifDecoder<Cursor<&[u8]>>, String> {
    let mut d = GifDecoder::new(Cursor::new(bytes)).map_err(|e| format!("does not decode: {e}"))?;
    d.set_limits(limits())
        .map_err(|e| format!("does not decode: {e}"))?;
    Ok(d)
}

/// Fits a GIF: the bytes, their type and whether the animation was dropped.
fn fit_gif(bytes: &[u8], limit: usize) -> Result<(Vec<u8>, MediaType, bool), String> {
    // First pass: count frames, keep the first one.
    let d = gif_decoder(bytes)?;
    let (w, h) = d.dimensions();
    let mut first: Option<RgbaImage> = None;
    let mut frames = 0usize;
    for f in d.into_frames() {
        let f = f.map_err(|e| format!("does not decode: {e}"))?;
        frames += 1;
        if first.is_none() {
            first = Some(f.into_buffer());
        }
        if frames > MAX_GIF_FRAMES {
            break;
        }
    }
    let first = first.ok_or("a GIF without frames")?;
    let pixels = u64::from(w) * u64::from(h) * frames as u64;
    if frames <= MAX_GIF_FRAMES && pixels <= MAX_GIF_PIXELS {
        let mut scale = ((limit as f64 / bytes.len() as f64).sqrt() * 0.9).min(0.9);
        for _ in 0..MAX_GIF_ATTEMPTS {
            if scale < MIN_GIF_SCALE {
                break;
            }
            let (nw, nh) = scaled(w, h, scale);
            match encode_gif(bytes, nw, nh, limit, frames)? {
                GifAttempt::Fits(out) => return Ok((out, MediaType::Gif, false)),
                GifAttempt::Over { estimate } => {
                    scale *= ((limit as f64 / estimate as f64).sqrt() * 0.9).min(0.85);
                }
            }
        }
    }
    let still = fit_jpeg(DynamicImage::ImageRgba8(first), limit)?;
    Ok((still, MediaType::Jpeg, frames > 1))
}

enum GifAttempt {
    Fits(Vec<u8>),
    /// Stopped over the limit; the estimated full size.
    Over {
        estimate: usize,
    },
}

/// Re-encodes every frame scaled to `nw`×`nh`, stopping once past `limit`.
fn encode_gif(
    bytes: &[u8],
    nw: u32,
    nh: u32,
    limit: usize,
    frames: usize,
) -> Result<GifAttempt, String> {
    let d = gif_decoder(bytes)?;
    let repeat = match d.loop_count() {
        LoopCount::Infinite => Repeat::Infinite,
        LoopCount::Finite(n) => Repeat::Finite(u16::try_from(n.get()).unwrap_or(u16::MAX)),
    };
    let mut out = Vec::new();
    let written = Cell::new(0usize);
    let mut done = 0usize;
    {
        let tally = Tally {
            out: &mut out,
            written: &written,
        };
        let mut enc = GifEncoder::new_with_speed(tally, GIF_SPEED);
        enc.set_repeat(repeat)
            .map_err(|e| format!("GIF encoding failed: {e}"))?;
        for f in d.into_frames() {
            let f = f.map_err(|e| format!("does not decode: {e}"))?;
            let delay = f.delay();
            let small = image::imageops::resize(f.buffer(), nw, nh, FilterType::Triangle);
            enc.encode_frame(Frame::from_parts(small, 0, 0, delay))
                .map_err(|e| format!("GIF encoding failed: {e}"))?;
            done += 1;
            if done >= frames || written.get() > limit {
                break;
            }
        }
    }
    // The encoder writes the trailer when dropped.
    if out.len() <= limit {
        return Ok(GifAttempt::Fits(out));
    }
    let estimate = out.len().saturating_mul(frames) / done.max(1);
    Ok(GifAttempt::Over { estimate })
}

/// A `Vec` writer whose length can be read while an encoder holds it.
struct Tally<'a> {
    out: &'a mut Vec<u8>,
    written: &'a Cell<usize>,
}

impl Write for Tally<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        self.written.set(self.out.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// === Fitter ===

/// [`fit()`] with a cache per (media id, limit), bounded in bytes, that
/// computes each entry once even when many callers ask at the same time
/// (they wait for the first). Failures are cached too: they are
/// deterministic.
///
/// # Defaults
/// [`Fitter::new`] keeps 64 MiB of results.
#[derive(Debug)]
pub struct Fitter {
    cache: Mutex<FitCache>,
    computed: AtomicU64,
}

type Slot = Arc<OnceLock<Result<Fitted, MediaError>>>;

#[derive(Debug)]
struct FitCache {
    map: HashMap<(MediaId, usize), (Slot, u64, usize)>,
    order: BTreeMap<u64, (MediaId, usize)>,
    tick: u64,
    bytes: usize,
    cap: usize,
}

/// Memory charged per cache entry on top of its bytes.
const ENTRY_OVERHEAD: usize = 256;

impl Default for Fitter {
    fn default() -> Self {
        Fitter::new()
    }
}

impl Fitter {
    /// A fitter keeping up to 64 MiB of fitted content.
    pub fn new() -> Fitter {
        Fitter::with_capacity(64 * 1024 * 1024)
    }

    /// A fitter keeping up to `cache_bytes` of fitted content.
    pub fn with_capacity(cache_bytes: usize) -> Fitter {
        Fitter {
            cache: Mutex::new(FitCache {
                map: HashMap::new(),
                order: BTreeMap::new(),
                tick: 0,
                bytes: 0,
                cap: cache_bytes,
            }),
            computed: AtomicU64::new(0),
        }
    }

    /// How many fits were computed (not answered from the cache), for tests
    /// and metrics.
    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// [`fit()`], cached. Media already within the limit is answered
    /// unchanged without touching the cache.
    ///
    /// Over the limit, the limit is first rounded down to six significant
    /// bits (at most 3.2% lower: 300,000 becomes 294,912): callers whose
    /// budget varies a little per message (the MM7 envelope grows with the
    /// text) then share one cached result instead of re-encoding per
    /// message. The output is within the bucket, hence within the limit.
    ///
    /// # Errors
    /// As [`fit()`].
    pub fn fit(&self, media: &Media, max_bytes: usize) -> Result<Fitted, MediaError> {
        if media.bytes.len() <= max_bytes {
            return fit(media, max_bytes);
        }
        let max_bytes = bucket(max_bytes);
        let key = (media.id, max_bytes);
        let slot = {
            let mut c = self.cache.lock();
            c.tick += 1;
            let tick = c.tick;
            match c.map.get_mut(&key) {
                Some((slot, used, _)) => {
                    let slot = slot.clone();
                    let old = std::mem::replace(used, tick);
                    c.order.remove(&old);
                    c.order.insert(tick, key);
                    slot
                }
                None => {
                    let slot: Slot = Arc::new(OnceLock::new());
                    c.map.insert(key, (slot.clone(), tick, ENTRY_OVERHEAD));
                    c.order.insert(tick, key);
                    c.bytes += ENTRY_OVERHEAD;
                    slot
                }
            }
        };
        let mut computed_here = false;
        let result = slot
            .get_or_init(|| {
                computed_here = true;
                self.computed.fetch_add(1, Ordering::Relaxed);
                fit(media, max_bytes)
            })
            .clone();
        if computed_here {
            let size = ENTRY_OVERHEAD + result.as_ref().map_or(0, |f| f.bytes.len());
            self.cache.lock().charge(key, &slot, size);
        }
        result
    }
}

/// `limit` with all but its six most significant bits cleared.
fn bucket(limit: usize) -> usize {
    let bits = usize::BITS - limit.leading_zeros();
    if bits <= 6 {
        return limit;
    }
    limit & !((1usize << (bits - 6)) - 1)
}

impl FitCache {
    /// Records the real size of a computed entry and evicts the least
    /// recently used entries over the capacity.
    fn charge(&mut self, key: (MediaId, usize), slot: &Slot, size: usize) {
        if let Some((s, _, charged)) = self.map.get_mut(&key)
            && Arc::ptr_eq(s, slot)
        {
            self.bytes = self.bytes - *charged + size;
            *charged = size;
        }
        while self.bytes > self.cap {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, _, charged)) = self.map.remove(&old) {
                self.bytes -= charged;
            }
        }
    }
}

#[cfg(test)]
mod tests;
