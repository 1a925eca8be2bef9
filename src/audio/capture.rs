//! Live microphone capture through cpal: device → mono `f32` chunks at the device rate.
//!
//! Why it is built this way:
//!
//! - **The audio callback only converts, downmixes and hands off.** It runs on the
//!   backend's real-time thread, so it never blocks and never waits on the consumer: each
//!   callback converts the device's samples to `f32` (integers map full scale to ±1,
//!   `i16::MIN` → `-1.0`, as in [`decode`](super::decode_file)), averages interleaved
//!   channels to mono and appends to a pending buffer. Once the buffer holds at least
//!   [`CHUNK_MS`] of audio it is sent with `try_send` on a bounded
//!   `std::sync::mpsc::sync_channel`. Coalescing to 10 ms chunks keeps the number of queued
//!   messages small even with tiny periods (JACK, PipeWire) at the cost of ≤ 10 ms latency.
//!   The only allocation is one `Vec` per sent chunk, of bounded size (the consumer owns
//!   the chunks it receives, so buffers cannot be recycled).
//! - **The queue is bounded in audio, not in messages.** Callback sizes are unknown until the
//!   stream runs and differ between backends, so a message count alone would bound the queue
//!   only loosely. A shared counter of queued samples is checked before each send, so the
//!   queue never holds more than `max_queue_ms` of audio (or one chunk, if a single
//!   callback is larger than that, so that capture always makes progress). The channel's
//!   own capacity, `max_queue_ms / 10 ms + 2` messages, is only a backstop: `sync_channel`
//!   allocates its slots up front, which is why `max_queue_ms` has an upper limit.
//! - **Nothing is lost silently.** When the consumer falls behind and a chunk does not
//!   fit, the callback drops it and adds its length to [`Capture::dropped_samples`].
//!   Overruns the device reports (audio lost before it reached us) are counted in
//!   [`Capture::n_overruns`].
//! - **Stream errors travel out of band.** cpal reports errors on a separate callback. Fatal
//!   ones (device unplugged, stream invalidated, ...) are stored once and a wake-up (an
//!   empty chunk, which allocates nothing) is queued, so a blocked [`Capture::recv_timeout`]
//!   returns at once. Audio queued before the error is delivered first, then the error,
//!   on every later call. Overruns, real-time scheduling refusals and automatic reroutes are
//!   not fatal: the stream keeps running.
//! - **The device rate is kept.** Resampling to 16 kHz belongs to the consumer
//!   ([`StreamResampler`](super::StreamResampler)), which keeps this module free of filter
//!   state and the captured audio a faithful view of the device.
//! - **No cpal type is public.** Devices are described by [`DeviceInfo`], errors are
//!   [`Error::Device`], and the queue logic (`ChunkSender`, `ErrorSink`, `ChunkReceiver`)
//!   is plain Rust that the tests drive without a sound card.
//!
//! Devices. The host is the platform's default one (ALSA on Linux with hearken's cpal
//! features, WASAPI, CoreAudio), obtained without `cpal::default_host()`, which panics
//! when that host cannot start. ALSA lists several PCMs per card (`front:`, `sysdefault:`,
//! `hw:`, `plughw:`, ...) whose descriptions share one first line, so names that would
//! repeat carry their PCM id, e.g. `HDA Intel PCH, ALC892 Analog (front:CARD=PCH,DEV=0)`.
//! ALSA's `null` PCM, which captures endless silence, is not an input device and is not
//! listed; it can still be opened by its exact id `null`, which tests the whole capture
//! path on a machine without a microphone.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel,
};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use crate::{Error, Result};

/// The queue bound used when [`CaptureOptions::max_queue_ms`] is 0, in milliseconds.
pub const DEFAULT_MAX_QUEUE_MS: u32 = 2_000;

/// The largest accepted [`CaptureOptions::max_queue_ms`] (10 minutes), in milliseconds.
///
/// The channel's slots are allocated up front, one per [`CHUNK_MS`] of the bound.
pub const MAX_QUEUE_MS_LIMIT: u32 = 600_000;

/// The callback coalesces audio into chunks of at least this many milliseconds.
pub const CHUNK_MS: u32 = 10;

/// How long a backend may take to start a stream; on ALSA also how often a silent device
/// is checked for a disconnection that was not signalled.
const STREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// The reason given when a machine has no audio input at all.
const NO_INPUT_DEVICE: &str = "no audio input device found (this machine has no sound card?)";

/// An input device as listed by `hearken devices`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// The name to show and to pass as [`CaptureOptions::device`]; unique within one listing.
    pub name: String,
    /// `true` for the host's default input device.
    pub is_default: bool,
    /// The device's default sample rate, in Hz (`None` when it cannot be opened now).
    pub default_sample_rate_hz: Option<u32>,
    /// The device's default channel count (`None` when it cannot be opened now).
    pub default_channels: Option<u16>,
    /// The sample formats it can capture, e.g. `["f32", "i16"]` (empty when unknown).
    pub sample_formats: Vec<String>,
}

/// Lists the input devices of the default host, in the host's order.
///
/// A machine without any gives `Ok(vec![])`. Each device is opened briefly to read its
/// default configuration; one that is busy or gone is still listed, with `None` and an
/// empty format list. Fails with [`Error::Device`] when the audio host cannot start or
/// cannot enumerate its devices.
pub fn input_devices() -> Result<Vec<DeviceInfo>> {
    let host = default_host()?;
    let default = host.default_input_device();
    let candidates = candidates(&host)?;
    let _span = tracing::debug_span!("audio.devices", n_devices = candidates.len()).entered();
    Ok(candidates
        .iter()
        .filter(|c| !c.hidden)
        .map(|c| {
            let config = c.device.default_input_config().ok();
            let mut sample_formats: Vec<String> = Vec::new();
            if let Ok(ranges) = c.device.supported_input_configs() {
                for range in ranges {
                    let format = range.sample_format().to_string();
                    if !sample_formats.contains(&format) {
                        sample_formats.push(format);
                    }
                }
            }
            DeviceInfo {
                name: c.name.clone(),
                is_default: default.as_ref() == Some(&c.device),
                default_sample_rate_hz: config.as_ref().map(|c| c.sample_rate()),
                default_channels: config.as_ref().map(|c| c.channels()),
                sample_formats,
            }
        })
        .collect())
}

/// Options of a capture.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CaptureOptions {
    /// Device name: an exact name or device id (`hw:CARD=PCH,DEV=0`), else the first
    /// device whose name contains it, case-insensitive; `None` (or an empty string) = the
    /// default input device.
    pub device: Option<String>,
    /// Requested rate, in Hz; `None` = the device's default. The captured audio stays at
    /// the device rate; the consumer resamples.
    pub sample_rate_hz: Option<u32>,
    /// Bound on the queue between the audio callback and the consumer, in milliseconds of
    /// audio [default when 0: [`DEFAULT_MAX_QUEUE_MS`]; at most [`MAX_QUEUE_MS_LIMIT`]].
    pub max_queue_ms: u32,
}

/// A running capture: mono `f32` chunks at [`Capture::sample_rate_hz`], delivered off the
/// audio callback through a bounded queue. Dropping it stops the stream.
///
/// Each chunk is `(n_samples,)` with `n_samples` ≥ [`CHUNK_MS`] of audio (or
/// `max_queue_ms`, if smaller), one callback's worth when callbacks are larger. Samples are nominally in `[-1, 1]`; float devices are
/// passed through unclipped, like [`Pcm`](super::Pcm).
pub struct Capture {
    // Declared first so that it drops first: the callbacks stop before the queue goes.
    _stream: cpal::Stream,
    queue: ChunkReceiver,
    device_name: String,
    sample_rate_hz: u32,
    channels: u16,
}

impl Capture {
    /// Opens the input device `opts` names (or the default one) and starts capturing.
    ///
    /// Errors:
    /// - [`Error::Device`] with no device named, when the machine has no input device;
    /// - [`Error::Device`] naming the device when it is unknown (the reason lists the
    ///   available names), busy, gone, or cannot capture at the requested rate in a sample
    ///   format hearken converts (every PCM format cpal has, DSD excepted);
    /// - [`Error::InvalidSampleRate`] for a requested rate outside 1 ..= 1 000 000 Hz;
    /// - [`Error::InvalidInput`] for `max_queue_ms` over [`MAX_QUEUE_MS_LIMIT`].
    pub fn start(opts: &CaptureOptions) -> Result<Capture> {
        let max_queue_ms = match opts.max_queue_ms {
            0 => DEFAULT_MAX_QUEUE_MS,
            ms if ms > MAX_QUEUE_MS_LIMIT => {
                return Err(Error::invalid(
                    "capture max_queue_ms",
                    format!("0 (default {DEFAULT_MAX_QUEUE_MS}) ..= {MAX_QUEUE_MS_LIMIT} ms"),
                    ms,
                ));
            }
            ms => ms,
        };
        if let Some(rate) = opts.sample_rate_hz {
            super::check_sample_rate(rate)?;
        }

        let host = default_host()?;
        let wanted = opts
            .device
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty());
        let Candidate { device, name, .. } = match wanted {
            Some(wanted) => named_candidate(&host, wanted)?,
            None => default_candidate(&host)?,
        };

        let config = choose_config(&device, &name, opts.sample_rate_hz)?;
        let sample_rate_hz = config.sample_rate();
        let channels = config.channels();
        let sample_format = config.sample_format();
        let (mut sender, errors, queue) =
            chunk_queue(sample_rate_hz, channels, max_queue_ms, &name);
        tracing::debug!(
            device = %name,
            sample_rate_hz,
            channels,
            %sample_format,
            max_queue_ms,
            "audio.capture start"
        );

        let stream = device
            .build_input_stream_raw(
                config.config(),
                sample_format,
                move |data: &cpal::Data, _: &cpal::InputCallbackInfo| sender.push_data(data),
                move |err: cpal::Error| errors.report(&err),
                Some(STREAM_TIMEOUT),
            )
            .map_err(|e| device_error(&name, "cannot open an input stream", &e))?;
        stream
            .play()
            .map_err(|e| device_error(&name, "cannot start capturing", &e))?;
        Ok(Capture {
            _stream: stream,
            queue,
            device_name: name,
            sample_rate_hz,
            channels,
        })
    }

    /// The name of the device being captured, as [`input_devices`] lists it.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// The rate of the delivered chunks (the device's), in Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// The device's channel count; the output is always mono.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Blocks up to `timeout` for the next chunk, `(n_samples,)` mono at
    /// [`Capture::sample_rate_hz`].
    ///
    /// `Ok(None)` on timeout. Once the stream has reported a fatal error (device unplugged,
    /// stream invalidated, ...), the chunks already queued are returned first, then every
    /// call fails with that [`Error::Device`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Vec<f32>>> {
        self.queue.recv_timeout(timeout)
    }

    /// Samples (mono, at [`Capture::sample_rate_hz`]) the callback had to drop because the
    /// consumer fell behind and the queue was full.
    pub fn dropped_samples(&self) -> u64 {
        self.queue.dropped_samples()
    }

    /// Overruns the device reported: audio lost before it reached hearken, of a length
    /// the backend does not say.
    pub fn n_overruns(&self) -> u64 {
        self.queue.n_overruns()
    }
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("device_name", &self.device_name)
            .field("sample_rate_hz", &self.sample_rate_hz)
            .field("channels", &self.channels)
            .field("dropped_samples", &self.dropped_samples())
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------
// Sample conversion and downmix: pure, run on the audio thread.

/// A sample type an input device may deliver, and its mapping to `f32`.
///
/// Signed integers divide by 2^(bits-1), so the most negative value maps to exactly -1 and
/// the largest to 1 - 2^-(bits-1); unsigned ones are offset binary (origin 2^(bits-1)) and
/// map the same way after flipping the top bit. Floats pass through unchanged.
pub(crate) trait CaptureSample: cpal::SizedSample {
    /// This sample in full-scale `f32`.
    fn to_f32(self) -> f32;
}

impl CaptureSample for f32 {
    fn to_f32(self) -> f32 {
        self
    }
}

impl CaptureSample for f64 {
    fn to_f32(self) -> f32 {
        self as f32
    }
}

impl CaptureSample for i8 {
    fn to_f32(self) -> f32 {
        f32::from(self) / 128.0
    }
}

impl CaptureSample for i16 {
    fn to_f32(self) -> f32 {
        f32::from(self) / 32_768.0
    }
}

impl CaptureSample for cpal::I24 {
    fn to_f32(self) -> f32 {
        // 24 significant bits in an i32 container; sign-extend from bit 23 rather than trust
        // the unused top byte, which drivers do not all fill.
        let v = (self.inner() << 8) >> 8;
        v as f32 / 8_388_608.0
    }
}

impl CaptureSample for i32 {
    fn to_f32(self) -> f32 {
        self as f32 / 2_147_483_648.0
    }
}

impl CaptureSample for i64 {
    fn to_f32(self) -> f32 {
        self as f32 / 9_223_372_036_854_775_808.0
    }
}

impl CaptureSample for u8 {
    fn to_f32(self) -> f32 {
        ((self ^ 0x80) as i8).to_f32()
    }
}

impl CaptureSample for u16 {
    fn to_f32(self) -> f32 {
        ((self ^ 0x8000) as i16).to_f32()
    }
}

impl CaptureSample for cpal::U24 {
    fn to_f32(self) -> f32 {
        // Offset binary with origin 2^23 in the low 24 bits of an i32 container.
        let v = (self.inner() & 0x00FF_FFFF) - 0x0080_0000;
        v as f32 / 8_388_608.0
    }
}

impl CaptureSample for u32 {
    fn to_f32(self) -> f32 {
        ((self ^ 0x8000_0000) as i32).to_f32()
    }
}

impl CaptureSample for u64 {
    fn to_f32(self) -> f32 {
        ((self ^ (1 << 63)) as i64).to_f32()
    }
}

/// Whether the callback can convert `format` (every PCM format; not DSD).
fn is_convertible(format: cpal::SampleFormat) -> bool {
    use cpal::SampleFormat as F;
    matches!(
        format,
        F::I8
            | F::I16
            | F::I24
            | F::I32
            | F::I64
            | F::U8
            | F::U16
            | F::U24
            | F::U32
            | F::U64
            | F::F32
            | F::F64
    )
}

/// Converts interleaved samples to `f32` and averages each frame's `channels` samples,
/// appending one mono sample per frame to `out`.
///
/// A trailing partial frame (never produced by cpal) is ignored; `channels == 0` appends
/// nothing.
pub(crate) fn convert_to_mono<T: CaptureSample>(
    interleaved: &[T],
    channels: usize,
    out: &mut Vec<f32>,
) {
    match channels {
        0 => {}
        1 => out.extend(interleaved.iter().map(|&s| s.to_f32())),
        n => {
            let n_f32 = n as f32;
            out.extend(
                interleaved
                    .chunks_exact(n)
                    .map(|frame| frame.iter().map(|&s| s.to_f32()).sum::<f32>() / n_f32),
            );
        }
    }
}

/// Averages interleaved `f32` audio to mono: `interleaved` is `(n_frames, channels)`
/// row-major, and `n_frames` samples are appended to `out`.
///
/// A trailing partial frame is ignored; `channels == 0` appends nothing.
pub fn downmix_to_mono(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    convert_to_mono(interleaved, channels, out);
}

// ---------------------------------------------------------------------------------------
// The queue between the callback and the consumer: pure, testable without a device.

/// State shared by the two callbacks and the consumer.
#[derive(Debug, Default)]
struct Shared {
    /// Mono samples sent and not yet received.
    queued_samples: AtomicUsize,
    /// Mono samples dropped because the queue was full.
    dropped_samples: AtomicU64,
    /// Overruns reported by the device.
    n_overruns: AtomicU64,
    /// The first fatal stream error, as text.
    error: OnceLock<String>,
}

/// Sizes of the queue for one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QueueSizes {
    /// Upper bound on queued mono samples (exceeded only by a single oversized chunk).
    max_queued_samples: usize,
    /// Pending audio is sent once it holds this many samples.
    min_chunk_samples: usize,
    /// Capacity of the channel, in messages.
    capacity_chunks: usize,
}

impl QueueSizes {
    /// The sizes for `max_queue_ms` of audio at `sample_rate_hz`.
    fn new(sample_rate_hz: u32, max_queue_ms: u32) -> Self {
        let samples = |ms: u32| {
            let n = u64::from(sample_rate_hz) * u64::from(ms) / 1000;
            usize::try_from(n).unwrap_or(usize::MAX).max(1)
        };
        let max_queued_samples = samples(max_queue_ms);
        // A bound below one chunk would drop everything; shrink the chunk instead.
        let min_chunk_samples = samples(CHUNK_MS.min(max_queue_ms));
        // Every chunk but an oversized lone one holds ≥ min_chunk_samples, so this many
        // slots are never the binding limit; +2 leaves room for that chunk and a wake-up.
        let capacity_chunks = max_queued_samples / min_chunk_samples + 2;
        QueueSizes {
            max_queued_samples,
            min_chunk_samples,
            capacity_chunks,
        }
    }
}

/// Builds the three ends of the queue for a stream of `channels` interleaved channels at
/// `sample_rate_hz`, bounded to `max_queue_ms` (already validated, > 0) of mono audio.
fn chunk_queue(
    sample_rate_hz: u32,
    channels: u16,
    max_queue_ms: u32,
    device_name: &str,
) -> (ChunkSender, ErrorSink, ChunkReceiver) {
    let sizes = QueueSizes::new(sample_rate_hz, max_queue_ms);
    let (tx, rx) = sync_channel(sizes.capacity_chunks);
    let shared = Arc::new(Shared::default());
    let sender = ChunkSender {
        tx: tx.clone(),
        shared: Arc::clone(&shared),
        channels: usize::from(channels),
        sizes,
        pending: Vec::with_capacity(2 * sizes.min_chunk_samples),
        max_callback_frames: sizes.min_chunk_samples,
    };
    let errors = ErrorSink {
        tx,
        shared: Arc::clone(&shared),
    };
    let receiver = ChunkReceiver {
        rx,
        shared,
        device_name: device_name.to_owned(),
    };
    (sender, errors, receiver)
}

/// The data-callback side: converts, downmixes, coalesces and `try_send`s.
pub(crate) struct ChunkSender {
    tx: SyncSender<Vec<f32>>,
    shared: Arc<Shared>,
    channels: usize,
    sizes: QueueSizes,
    /// Mono audio not yet sent: `(n_samples,)`, fewer than `min_chunk_samples` between calls.
    pending: Vec<f32>,
    /// The largest callback seen, in frames: sizes the next chunk's allocation.
    max_callback_frames: usize,
}

impl ChunkSender {
    /// Handles one callback's buffer in whatever format the stream delivers.
    ///
    /// A format that cannot be converted (the stream was built with a convertible one, so
    /// this does not happen) is counted as dropped rather than ignored.
    fn push_data(&mut self, data: &cpal::Data) {
        use cpal::SampleFormat as F;
        let pushed = match data.sample_format() {
            F::I8 => self.push_slice::<i8>(data),
            F::I16 => self.push_slice::<i16>(data),
            F::I24 => self.push_slice::<cpal::I24>(data),
            F::I32 => self.push_slice::<i32>(data),
            F::I64 => self.push_slice::<i64>(data),
            F::U8 => self.push_slice::<u8>(data),
            F::U16 => self.push_slice::<u16>(data),
            F::U24 => self.push_slice::<cpal::U24>(data),
            F::U32 => self.push_slice::<u32>(data),
            F::U64 => self.push_slice::<u64>(data),
            F::F32 => self.push_slice::<f32>(data),
            F::F64 => self.push_slice::<f64>(data),
            _ => false,
        };
        if !pushed {
            let n_frames = data.len().checked_div(self.channels).unwrap_or(0);
            self.shared
                .dropped_samples
                .fetch_add(n_frames as u64, Ordering::Relaxed);
        }
    }

    /// [`ChunkSender::push`] on `data` viewed as `T`; `false` if it is not `T`.
    fn push_slice<T: CaptureSample>(&mut self, data: &cpal::Data) -> bool {
        match data.as_slice::<T>() {
            Some(samples) => {
                self.push(samples);
                true
            }
            None => false,
        }
    }

    /// Appends one callback's interleaved samples, `(n_frames, channels)` row-major, and
    /// sends the pending audio once it reaches the chunk size.
    pub(crate) fn push<T: CaptureSample>(&mut self, interleaved: &[T]) {
        let n_frames = interleaved.len().checked_div(self.channels).unwrap_or(0);
        self.max_callback_frames = self.max_callback_frames.max(n_frames);
        convert_to_mono(interleaved, self.channels, &mut self.pending);
        if self.pending.len() >= self.sizes.min_chunk_samples {
            self.send_pending();
        }
    }

    /// Sends the pending audio, or drops and counts it when the queue is full.
    fn send_pending(&mut self) {
        let n = self.pending.len();
        // Only this thread adds to `queued_samples`; the consumer only subtracts, so the
        // check cannot be invalidated by the time the chunk is sent.
        let queued = self.shared.queued_samples.load(Ordering::Acquire);
        if queued > 0 && queued.saturating_add(n) > self.sizes.max_queued_samples {
            self.drop_pending();
            return;
        }
        // Counted before sending so that the consumer never subtracts first.
        self.shared.queued_samples.fetch_add(n, Ordering::AcqRel);
        let next = Vec::with_capacity(self.sizes.min_chunk_samples + self.max_callback_frames);
        let chunk = std::mem::replace(&mut self.pending, next);
        match self.tx.try_send(chunk) {
            Ok(()) => {}
            Err(TrySendError::Full(chunk)) => {
                self.shared.queued_samples.fetch_sub(n, Ordering::AcqRel);
                self.pending = chunk;
                self.drop_pending();
            }
            // The consumer is gone: the capture is being dropped and nobody is listening.
            Err(TrySendError::Disconnected(chunk)) => {
                self.shared.queued_samples.fetch_sub(n, Ordering::AcqRel);
                self.pending = chunk;
                self.pending.clear();
            }
        }
    }

    /// Discards the pending audio, counting it.
    fn drop_pending(&mut self) {
        self.shared
            .dropped_samples
            .fetch_add(self.pending.len() as u64, Ordering::Relaxed);
        self.pending.clear();
    }
}

/// The error-callback side: records fatal errors and wakes the consumer.
pub(crate) struct ErrorSink {
    tx: SyncSender<Vec<f32>>,
    shared: Arc<Shared>,
}

impl ErrorSink {
    /// Handles one error from the stream.
    fn report(&self, err: &cpal::Error) {
        use cpal::ErrorKind as K;
        match err.kind() {
            K::Xrun => {
                self.shared.n_overruns.fetch_add(1, Ordering::Relaxed);
            }
            // The stream keeps running: scheduling is merely worse, or it was rerouted.
            K::RealtimeDenied | K::DeviceChanged => {}
            _ => {
                // Only the first error is kept: later ones are usually its consequences.
                let _ = self.shared.error.set(err.to_string());
                // An empty Vec allocates nothing; a full queue needs no wake-up.
                let _ = self.tx.try_send(Vec::new());
            }
        }
    }
}

/// The consumer side of the queue.
pub(crate) struct ChunkReceiver {
    rx: Receiver<Vec<f32>>,
    shared: Arc<Shared>,
    device_name: String,
}

impl ChunkReceiver {
    /// See [`Capture::recv_timeout`].
    fn recv_timeout(&self, timeout: Duration) -> Result<Option<Vec<f32>>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // Audio already queued was captured before any error: it comes first.
            match self.rx.try_recv() {
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => return Ok(Some(self.received(chunk))),
                Err(TryRecvError::Disconnected) => return Err(self.stopped()),
                Err(TryRecvError::Empty) => {}
            }
            if let Some(reason) = self.shared.error.get() {
                return Err(self.stream_error(reason));
            }
            let remaining = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => timeout,
            };
            if remaining.is_zero() {
                return Ok(None);
            }
            match self.rx.recv_timeout(remaining) {
                // A wake-up from the error callback: loop to report the error.
                Ok(chunk) if chunk.is_empty() => {}
                Ok(chunk) => return Ok(Some(self.received(chunk))),
                // Both are re-examined at the top of the loop.
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
        }
    }

    /// Accounts for a received chunk and returns it.
    fn received(&self, chunk: Vec<f32>) -> Vec<f32> {
        self.shared
            .queued_samples
            .fetch_sub(chunk.len(), Ordering::AcqRel);
        chunk
    }

    /// The error for a fatal stream error.
    fn stream_error(&self, reason: &str) -> Error {
        Error::Device {
            device: Some(self.device_name.clone()),
            reason: format!("capture stopped: {reason}"),
        }
    }

    /// The error once the backend has let go of the callbacks.
    fn stopped(&self) -> Error {
        match self.shared.error.get() {
            Some(reason) => self.stream_error(reason),
            None => Error::Device {
                device: Some(self.device_name.clone()),
                reason: "capture stopped: the audio backend closed the stream".into(),
            },
        }
    }

    fn dropped_samples(&self) -> u64 {
        self.shared.dropped_samples.load(Ordering::Relaxed)
    }

    fn n_overruns(&self) -> u64 {
        self.shared.n_overruns.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------
// Devices.

/// The platform's default host, as an error rather than a panic when it cannot start.
///
/// `cpal::default_host()` `expect`s its host to start. With the cpal features hearken
/// enables (none), `available_hosts()` lists the hosts it would try, in its order, so the
/// first one that starts is the same host.
fn default_host() -> Result<cpal::Host> {
    let mut last_error = None;
    for id in cpal::available_hosts() {
        match cpal::host_from_id(id) {
            Ok(host) => return Ok(host),
            Err(e) => last_error = Some(format!("{}: {e}", id.name())),
        }
    }
    Err(Error::Device {
        device: None,
        reason: match last_error {
            Some(e) => format!("the audio system is unavailable ({e})"),
            None => "this platform has no audio host".into(),
        },
    })
}

/// The input device `wanted` names (see [`pick`]).
fn named_candidate(host: &cpal::Host, wanted: &str) -> Result<Candidate> {
    let mut candidates = candidates(host)?;
    let entries: Vec<Entry<'_>> = candidates.iter().map(Candidate::entry).collect();
    match pick(&entries, wanted) {
        Some(i) => Ok(candidates.swap_remove(i)),
        None => Err(unknown_device(wanted, &entries)),
    }
}

/// The host's default input device, named as [`input_devices`] lists it.
fn default_candidate(host: &cpal::Host) -> Result<Candidate> {
    let no_device = || Error::Device {
        device: None,
        reason: NO_INPUT_DEVICE.into(),
    };
    // A listing failure does not stop us from trying the default device.
    let listed = candidates(host).ok();
    // Checked before touching the default device: on ALSA, opening `default` without a
    // card makes alsa-lib print a dozen lines to stderr before failing.
    if let Some(list) = &listed
        && list.iter().all(|c| c.hidden)
    {
        return Err(no_device());
    }
    let default = host.default_input_device().ok_or_else(no_device)?;
    let mut list = listed.unwrap_or_default();
    Ok(match list.iter().position(|c| c.device == default) {
        Some(i) => list.swap_remove(i),
        None => Candidate::new(default, false),
    })
}

/// An input device with the name and ids it can be chosen by.
struct Candidate {
    device: cpal::Device,
    name: String,
    /// The host-qualified id (`alsa:hw:CARD=PCH,DEV=0`).
    id: String,
    /// The id within the host (`hw:CARD=PCH,DEV=0`).
    bare_id: String,
    /// Not listed, and chosen only by exact id (ALSA's `null` PCM).
    hidden: bool,
}

impl Candidate {
    /// Describes `device`; `None` when it has gone (its description fails).
    fn describe(device: cpal::Device) -> Option<Self> {
        device.description().ok()?;
        let hidden = device
            .id()
            .is_ok_and(|id| id.host().name() == "ALSA" && id.id() == "null");
        Some(Self::new(device, hidden))
    }

    fn new(device: cpal::Device, hidden: bool) -> Self {
        // Not `device.to_string()`: cpal's `Display` fails, and `to_string` panics, when the
        // description cannot be read.
        let name = match device.description() {
            Ok(d) => d.name().to_owned(),
            Err(_) => String::new(),
        };
        let (id, bare_id) = match device.id() {
            Ok(id) => (id.to_string(), id.id().to_owned()),
            Err(_) => (name.clone(), name.clone()),
        };
        let name = if name.is_empty() {
            bare_id.clone()
        } else {
            name
        };
        Candidate {
            device,
            name,
            id,
            bare_id,
            hidden,
        }
    }

    fn entry(&self) -> Entry<'_> {
        Entry {
            name: &self.name,
            id: &self.id,
            bare_id: &self.bare_id,
            hidden: self.hidden,
        }
    }
}

/// The host's input devices, with names made unique.
fn candidates(host: &cpal::Host) -> Result<Vec<Candidate>> {
    let devices = host.input_devices().map_err(|e| Error::Device {
        device: None,
        reason: format!("cannot list audio input devices: {e}"),
    })?;
    let mut candidates: Vec<Candidate> = devices.filter_map(Candidate::describe).collect();
    let pairs: Vec<(&str, &str)> = candidates
        .iter()
        .map(|c| (c.name.as_str(), c.bare_id.as_str()))
        .collect();
    let names = unique_names(&pairs);
    for (c, name) in candidates.iter_mut().zip(names) {
        c.name = name;
    }
    Ok(candidates)
}

/// Appends ` ({id})` to every name that occurs more than once in `(name, id)` pairs.
fn unique_names(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .map(|&(name, id)| {
            let repeated = pairs.iter().filter(|(n, _)| *n == name).count() > 1;
            if repeated && name != id {
                format!("{name} ({id})")
            } else {
                name.to_owned()
            }
        })
        .collect()
}

/// What a device can be chosen by.
#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    name: &'a str,
    id: &'a str,
    bare_id: &'a str,
    hidden: bool,
}

/// The device `wanted` names: the first exact name or id, else (listed devices only) the
/// first whose name contains it, case-insensitive.
fn pick(entries: &[Entry<'_>], wanted: &str) -> Option<usize> {
    let exact = entries
        .iter()
        .position(|e| (!e.hidden && e.name == wanted) || e.id == wanted || e.bare_id == wanted);
    exact.or_else(|| {
        let wanted = wanted.to_lowercase();
        entries
            .iter()
            .position(|e| !e.hidden && e.name.to_lowercase().contains(&wanted))
    })
}

/// The error for a device name that matches nothing: it lists the names that would.
fn unknown_device(wanted: &str, entries: &[Entry<'_>]) -> Error {
    let names: Vec<String> = entries
        .iter()
        .filter(|e| !e.hidden)
        .map(|e| format!("`{}`", e.name))
        .collect();
    let reason = if names.is_empty() {
        format!("no such input device; {NO_INPUT_DEVICE}")
    } else {
        format!("no such input device; available: {}", names.join(", "))
    };
    Error::Device {
        device: Some(wanted.to_owned()),
        reason,
    }
}

/// The stream configuration: the device's default, or the best one at the requested rate.
///
/// At another rate than the default's, configurations in the default's sample format and
/// channel count are preferred, then cpal's own ranking (stereo, mono, f32 first, ...).
fn choose_config(
    device: &cpal::Device,
    name: &str,
    sample_rate_hz: Option<u32>,
) -> Result<cpal::SupportedStreamConfig> {
    let default = device
        .default_input_config()
        .map_err(|e| device_error(name, "cannot read its input configuration", &e))?;
    let rate = sample_rate_hz.unwrap_or(default.sample_rate());
    if rate == default.sample_rate() && is_convertible(default.sample_format()) {
        return Ok(default);
    }
    let ranges: Vec<cpal::SupportedStreamConfigRange> = device
        .supported_input_configs()
        .map_err(|e| device_error(name, "cannot read its input configurations", &e))?
        .collect();
    let rank = |r: &cpal::SupportedStreamConfigRange| {
        (
            r.sample_format() == default.sample_format(),
            r.channels() == default.channels(),
        )
    };
    let best = ranges
        .iter()
        .filter(|r| is_convertible(r.sample_format()) && r.contains_rate(rate))
        .max_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
                .then_with(|| a.cmp_default_heuristics(b))
        });
    if let Some(config) = best.and_then(|r| r.try_with_sample_rate(rate)) {
        return Ok(config);
    }
    let mut rates: Vec<String> = Vec::new();
    for r in ranges.iter().filter(|r| is_convertible(r.sample_format())) {
        let text = if r.min_sample_rate() == r.max_sample_rate() {
            format!("{} Hz", r.min_sample_rate())
        } else {
            format!("{}..={} Hz", r.min_sample_rate(), r.max_sample_rate())
        };
        if !rates.contains(&text) {
            rates.push(text);
        }
    }
    Err(Error::Device {
        device: Some(name.to_owned()),
        reason: if rates.is_empty() {
            "it offers no sample format hearken can convert (DSD only?)".into()
        } else {
            format!(
                "cannot capture at {rate} Hz (it supports {}); omit the rate to use its default",
                rates.join(", ")
            )
        },
    })
}

/// [`Error::Device`] for a cpal error while doing `what` with device `name`.
fn device_error(name: &str, what: &str, err: &cpal::Error) -> Error {
    let hint = match err.kind() {
        cpal::ErrorKind::DeviceBusy => " (another program may be using it)",
        cpal::ErrorKind::PermissionDenied => {
            " (on Linux, is the user in the `audio` group? on macOS, allow microphone access)"
        }
        _ => "",
    };
    Error::Device {
        device: Some(name.to_owned()),
        reason: format!("{what}: {err}{hint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use cpal::{I24, U24};

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-7
    }

    #[test]
    fn signed_integers_map_full_scale_to_unit() {
        assert_eq!(i8::MIN.to_f32(), -1.0);
        assert_eq!(0i8.to_f32(), 0.0);
        assert_eq!(i8::MAX.to_f32(), 127.0 / 128.0);
        assert_eq!(i16::MIN.to_f32(), -1.0);
        assert_eq!(0i16.to_f32(), 0.0);
        assert_eq!(i16::MAX.to_f32(), 32_767.0 / 32_768.0);
        assert_eq!(16_384i16.to_f32(), 0.5);
        assert_eq!(i32::MIN.to_f32(), -1.0);
        assert_eq!(0i32.to_f32(), 0.0);
        assert_eq!((1i32 << 30).to_f32(), 0.5);
        assert!(close(i32::MAX.to_f32(), 1.0));
        assert_eq!(i64::MIN.to_f32(), -1.0);
        assert_eq!((-(1i64 << 61)).to_f32(), -0.25);
        assert!(close(i64::MAX.to_f32(), 1.0));
    }

    #[test]
    fn i24_sign_extends_and_ignores_the_top_byte() {
        assert_eq!(I24::new_unchecked(-8_388_608).to_f32(), -1.0);
        assert_eq!(
            I24::new_unchecked(8_388_607).to_f32(),
            8_388_607.0 / 8_388_608.0
        );
        assert_eq!(I24::new_unchecked(4_194_304).to_f32(), 0.5);
        assert_eq!(I24::new_unchecked(0).to_f32(), 0.0);
        // -1 with a zero top byte, as some drivers deliver S24 in a 32-bit container.
        assert_eq!(I24::new_unchecked(0x00FF_FFFF).to_f32(), -1.0 / 8_388_608.0);
    }

    #[test]
    fn unsigned_integers_are_offset_binary() {
        assert_eq!(0u8.to_f32(), -1.0);
        assert_eq!(128u8.to_f32(), 0.0);
        assert_eq!(u8::MAX.to_f32(), 127.0 / 128.0);
        assert_eq!(192u8.to_f32(), 0.5);
        assert_eq!(0u16.to_f32(), -1.0);
        assert_eq!(32_768u16.to_f32(), 0.0);
        assert_eq!(u16::MAX.to_f32(), 32_767.0 / 32_768.0);
        assert_eq!(U24::new_unchecked(0).to_f32(), -1.0);
        assert_eq!(U24::new_unchecked(8_388_608).to_f32(), 0.0);
        assert_eq!(
            U24::new_unchecked(16_777_215).to_f32(),
            8_388_607.0 / 8_388_608.0
        );
        assert_eq!(U24::new_unchecked(0x7F80_0000).to_f32(), 0.0);
        assert_eq!(0u32.to_f32(), -1.0);
        assert_eq!(0x8000_0000u32.to_f32(), 0.0);
        assert!(close(u32::MAX.to_f32(), 1.0));
        assert_eq!(0u64.to_f32(), -1.0);
        assert_eq!((1u64 << 63).to_f32(), 0.0);
        assert!(close(u64::MAX.to_f32(), 1.0));
    }

    #[test]
    fn floats_pass_through_unclipped() {
        assert_eq!(0.25f32.to_f32(), 0.25);
        assert_eq!(1.5f32.to_f32(), 1.5);
        assert_eq!((-0.125f64).to_f32(), -0.125);
        assert!(f32::NAN.to_f32().is_nan());
    }

    #[test]
    fn every_pcm_format_is_convertible_and_dsd_is_not() {
        use cpal::SampleFormat as F;
        for f in [
            F::I8,
            F::I16,
            F::I24,
            F::I32,
            F::I64,
            F::U8,
            F::U16,
            F::U24,
            F::U32,
            F::U64,
            F::F32,
            F::F64,
        ] {
            assert!(is_convertible(f), "{f}");
        }
        for f in [F::DsdU8, F::DsdU16, F::DsdU32] {
            assert!(!is_convertible(f), "{f}");
        }
    }

    #[test]
    fn downmix_averages_frames() {
        let mut out = vec![9.0];
        downmix_to_mono(&[1.0, 0.0, 0.5, 0.5, -1.0, 1.0], 2, &mut out);
        assert_eq!(out, [9.0, 0.5, 0.5, 0.0]);

        let mut out = Vec::new();
        downmix_to_mono(&[0.3, 0.6, 0.9, 0.0, 0.0, 0.3], 3, &mut out);
        assert_eq!(out.len(), 2);
        assert!(close(out[0], 0.6));
        assert!(close(out[1], 0.1));

        let mut out = Vec::new();
        downmix_to_mono(&[0.1, -0.2, 0.3], 1, &mut out);
        assert_eq!(out, [0.1, -0.2, 0.3]);
    }

    #[test]
    fn downmix_edge_cases_do_not_panic() {
        let mut out = Vec::new();
        downmix_to_mono(&[1.0, 2.0, 3.0], 0, &mut out);
        assert!(out.is_empty());
        // Trailing partial frame ignored.
        downmix_to_mono(&[1.0, 3.0, 5.0], 2, &mut out);
        assert_eq!(out, [2.0]);
        out.clear();
        downmix_to_mono(&[], 2, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn convert_to_mono_converts_then_averages() {
        let mut out = Vec::new();
        convert_to_mono(&[i16::MIN, 0, 16_384, 16_384], 2, &mut out);
        assert_eq!(out, [-0.5, 0.5]);
        out.clear();
        convert_to_mono(&[0u8, 255, 128, 128], 2, &mut out);
        assert_eq!(out, [-1.0 / 256.0, 0.0]);
    }

    #[test]
    fn queue_sizes() {
        let s = QueueSizes::new(48_000, 2_000);
        assert_eq!(s.max_queued_samples, 96_000);
        assert_eq!(s.min_chunk_samples, 480);
        assert_eq!(s.capacity_chunks, 202);
        // A bound under one chunk shrinks the chunk.
        let s = QueueSizes::new(16_000, 5);
        assert_eq!((s.max_queued_samples, s.min_chunk_samples), (80, 80));
        // Tiny rates still make progress.
        let s = QueueSizes::new(1, 1);
        assert_eq!((s.max_queued_samples, s.min_chunk_samples), (1, 1));
        let s = QueueSizes::new(u32::MAX, MAX_QUEUE_MS_LIMIT);
        assert_eq!(s.capacity_chunks, 60_002);
    }

    /// A queue at 1 kHz: chunks of ≥ 10 samples, at most 50 samples queued.
    fn small_queue(channels: u16) -> (ChunkSender, ErrorSink, ChunkReceiver) {
        chunk_queue(1_000, channels, 50, "test mic")
    }

    const NO_WAIT: Duration = Duration::ZERO;

    #[test]
    fn callbacks_are_coalesced_into_chunks() {
        let (mut tx, _errors, rx) = small_queue(2);
        // 4 stereo frames: below the 10-sample chunk, nothing sent yet.
        tx.push(&[0i16; 8]);
        assert_eq!(rx.recv_timeout(NO_WAIT).unwrap(), None);
        // 8 more frames: 12 pending ≥ 10, sent as one chunk.
        tx.push(&[16_384i16; 16]);
        let chunk = rx.recv_timeout(NO_WAIT).unwrap().unwrap();
        assert_eq!(chunk.len(), 12);
        assert_eq!(&chunk[..4], &[0.0; 4]);
        assert_eq!(&chunk[4..], &[0.5; 8]);
        assert_eq!(rx.recv_timeout(NO_WAIT).unwrap(), None);
        assert_eq!(rx.dropped_samples(), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (mut tx, _errors, rx) = small_queue(1);
        // 5 chunks of 10 fill the 50-sample bound exactly.
        for i in 0..5 {
            tx.push(&[i as f32; 10]);
        }
        assert_eq!(rx.dropped_samples(), 0);
        // The consumer is behind: the next two chunks are dropped and counted.
        tx.push(&[9.0f32; 10]);
        tx.push(&[9.0f32; 13]);
        assert_eq!(rx.dropped_samples(), 23);
        // Draining one chunk makes room for exactly one more.
        assert_eq!(rx.recv_timeout(NO_WAIT).unwrap().unwrap(), [0.0; 10]);
        tx.push(&[5.0f32; 10]);
        tx.push(&[6.0f32; 10]);
        assert_eq!(rx.dropped_samples(), 33);
        let received: Vec<f32> = (0..5)
            .map(|_| rx.recv_timeout(NO_WAIT).unwrap().unwrap()[0])
            .collect();
        assert_eq!(received, [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(rx.recv_timeout(NO_WAIT).unwrap(), None);
        assert_eq!(rx.shared.queued_samples.load(Ordering::Acquire), 0);
    }

    #[test]
    fn an_oversized_chunk_is_sent_when_the_queue_is_empty() {
        let (mut tx, _errors, rx) = small_queue(1);
        tx.push(&[0.25f32; 80]);
        assert_eq!(rx.dropped_samples(), 0);
        tx.push(&[0.5f32; 10]);
        assert_eq!(rx.dropped_samples(), 10);
        assert_eq!(rx.recv_timeout(NO_WAIT).unwrap().unwrap().len(), 80);
        tx.push(&[0.5f32; 10]);
        assert_eq!(rx.recv_timeout(NO_WAIT).unwrap().unwrap().len(), 10);
    }

    #[test]
    fn fatal_errors_come_after_queued_audio_and_stay() {
        let (mut tx, errors, rx) = small_queue(1);
        tx.push(&[0.5f32; 10]);
        errors.report(&cpal::Error::new(cpal::ErrorKind::DeviceNotAvailable));
        errors.report(&cpal::Error::with_message(
            cpal::ErrorKind::BackendError,
            "a consequence",
        ));
        assert_eq!(rx.recv_timeout(NO_WAIT).unwrap().unwrap(), [0.5; 10]);
        for _ in 0..2 {
            let err = rx.recv_timeout(Duration::from_secs(5)).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::Device { device: Some(ref d), .. } if d == "test mic"));
            assert!(
                text.starts_with("audio device `test mic`: capture stopped: "),
                "{text}"
            );
            assert!(text.contains("not available"), "{text}");
        }
    }

    #[test]
    fn overruns_and_reroutes_are_not_fatal() {
        let (mut tx, errors, rx) = small_queue(1);
        errors.report(&cpal::Error::new(cpal::ErrorKind::Xrun));
        errors.report(&cpal::Error::new(cpal::ErrorKind::Xrun));
        errors.report(&cpal::Error::new(cpal::ErrorKind::RealtimeDenied));
        errors.report(&cpal::Error::new(cpal::ErrorKind::DeviceChanged));
        assert_eq!(rx.n_overruns(), 2);
        assert_eq!(rx.recv_timeout(NO_WAIT).unwrap(), None);
        tx.push(&[0.0f32; 10]);
        assert_eq!(rx.recv_timeout(NO_WAIT).unwrap().unwrap().len(), 10);
    }

    #[test]
    fn an_error_wakes_a_blocked_consumer() {
        let (_tx, errors, rx) = small_queue(1);
        let t0 = Instant::now();
        let reporter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            errors.report(&cpal::Error::new(cpal::ErrorKind::StreamInvalidated));
            errors
        });
        assert!(rx.recv_timeout(Duration::from_secs(30)).is_err());
        assert!(t0.elapsed() < Duration::from_secs(10));
        drop(reporter.join().unwrap());
    }

    #[test]
    fn a_closed_stream_is_an_error_and_timeouts_are_none() {
        let (tx, errors, rx) = small_queue(1);
        let t0 = Instant::now();
        assert_eq!(rx.recv_timeout(Duration::from_millis(30)).unwrap(), None);
        assert!(t0.elapsed() >= Duration::from_millis(30));
        drop((tx, errors));
        let text = rx.recv_timeout(Duration::MAX).unwrap_err().to_string();
        assert!(text.contains("closed the stream"), "{text}");
    }

    #[test]
    fn data_in_every_format_reaches_the_queue() {
        // `cpal::Data` wraps a raw buffer; build one over a local array per format.
        fn push_as<T: CaptureSample>(samples: &mut [T]) -> Vec<f32> {
            let (mut tx, _errors, rx) = chunk_queue(1_000, 1, 50, "test");
            // SAFETY: `samples` outlives `data`, holds `len` elements of `T::FORMAT`.
            let data = unsafe {
                cpal::Data::from_parts(samples.as_mut_ptr().cast(), samples.len(), T::FORMAT)
            };
            tx.push_data(&data);
            assert_eq!(rx.dropped_samples(), 0);
            rx.recv_timeout(NO_WAIT).unwrap().unwrap()
        }
        assert_eq!(push_as(&mut [i8::MIN; 10]), [-1.0; 10]);
        assert_eq!(push_as(&mut [i16::MIN; 10]), [-1.0; 10]);
        assert_eq!(
            push_as(&mut [I24::new_unchecked(-8_388_608); 10]),
            [-1.0; 10]
        );
        assert_eq!(push_as(&mut [i32::MIN; 10]), [-1.0; 10]);
        assert_eq!(push_as(&mut [i64::MIN; 10]), [-1.0; 10]);
        assert_eq!(push_as(&mut [0u8; 10]), [-1.0; 10]);
        assert_eq!(push_as(&mut [0u16; 10]), [-1.0; 10]);
        assert_eq!(push_as(&mut [U24::new_unchecked(0); 10]), [-1.0; 10]);
        assert_eq!(push_as(&mut [0u32; 10]), [-1.0; 10]);
        assert_eq!(push_as(&mut [0u64; 10]), [-1.0; 10]);
        assert_eq!(push_as(&mut [-1.0f32; 10]), [-1.0; 10]);
        assert_eq!(push_as(&mut [-1.0f64; 10]), [-1.0; 10]);
    }

    fn entry<'a>(name: &'a str, bare_id: &'a str) -> Entry<'a> {
        Entry {
            name,
            id: bare_id,
            bare_id,
            hidden: false,
        }
    }

    #[test]
    fn devices_are_picked_by_exact_name_or_id_then_substring() {
        let entries = [
            entry(
                "HDA Intel PCH (front:CARD=PCH,DEV=0)",
                "front:CARD=PCH,DEV=0",
            ),
            entry("HDA Intel PCH (hw:CARD=PCH,DEV=0)", "hw:CARD=PCH,DEV=0"),
            entry("USB Mic", "hw:CARD=Mic,DEV=0"),
            entry("USB", "usb"),
            Entry {
                name: "Discard all samples",
                id: "alsa:null",
                bare_id: "null",
                hidden: true,
            },
        ];
        assert_eq!(pick(&entries, "USB"), Some(3));
        assert_eq!(pick(&entries, "usb mic"), Some(2));
        assert_eq!(pick(&entries, "hw:CARD=PCH,DEV=0"), Some(1));
        assert_eq!(pick(&entries, "intel"), Some(0));
        assert_eq!(pick(&entries, "null"), Some(4));
        assert_eq!(pick(&entries, "alsa:null"), Some(4));
        assert_eq!(pick(&entries, "Discard"), None);
        assert_eq!(pick(&entries, "Discard all samples"), None);
        assert_eq!(pick(&entries, "webcam"), None);
    }

    #[test]
    fn unknown_devices_list_the_names() {
        let entries = [entry("USB Mic", "hw:1"), entry("Webcam", "hw:2")];
        assert_eq!(
            unknown_device("studio", &entries).to_string(),
            "audio device `studio`: no such input device; available: `USB Mic`, `Webcam`"
        );
        assert_eq!(
            unknown_device("studio", &[]).to_string(),
            "audio device `studio`: no such input device; no audio input device found (this \
             machine has no sound card?)"
        );
    }

    #[test]
    fn repeated_names_carry_their_id() {
        let names = unique_names(&[
            ("HDA Intel PCH", "front:CARD=PCH,DEV=0"),
            ("USB Mic", "hw:CARD=Mic,DEV=0"),
            ("HDA Intel PCH", "hw:CARD=PCH,DEV=0"),
            ("default", "default"),
        ]);
        assert_eq!(
            names,
            [
                "HDA Intel PCH (front:CARD=PCH,DEV=0)",
                "USB Mic",
                "HDA Intel PCH (hw:CARD=PCH,DEV=0)",
                "default"
            ]
        );
    }

    #[test]
    fn invalid_options_are_rejected_before_any_device_is_touched() {
        let err = Capture::start(&CaptureOptions {
            max_queue_ms: MAX_QUEUE_MS_LIMIT + 1,
            ..CaptureOptions::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        let err = Capture::start(&CaptureOptions {
            sample_rate_hz: Some(0),
            ..CaptureOptions::default()
        })
        .unwrap_err();
        assert!(
            matches!(err, Error::InvalidSampleRate { sample_rate_hz: 0 }),
            "{err}"
        );
    }

    #[test]
    fn alsa_null_device_streams_silence_when_present() {
        // ALSA's `null` PCM exists wherever alsa-lib is configured, sound card or not; it
        // runs the real stream path (callback, format, queue) without a microphone.
        let opts = CaptureOptions {
            device: Some("null".into()),
            sample_rate_hz: Some(16_000),
            max_queue_ms: 100,
        };
        let cap = match Capture::start(&opts) {
            Ok(cap) => cap,
            Err(e) => {
                eprintln!("skipped: no ALSA `null` device here ({e})");
                return;
            }
        };
        assert_eq!(cap.sample_rate_hz(), 16_000);
        assert!(cap.channels() >= 1);
        let chunk = cap.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert!(chunk.len() >= 160, "{}", chunk.len());
        assert!(chunk.iter().all(|&s| s == 0.0));
        // `null` delivers as fast as it can: with nobody reading, the bound must hold.
        std::thread::sleep(Duration::from_millis(100));
        let queued = cap.queue.shared.queued_samples.load(Ordering::Acquire);
        assert!(queued <= 1_600 + 160, "{queued}");
        assert!(cap.dropped_samples() > 0);
    }

    #[test]
    fn capture_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Capture>();
    }
}
