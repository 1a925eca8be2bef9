//! Sample-rate conversion with rubato's windowed-sinc resampler, offline and streaming.
//!
//! One algorithm serves both uses: [`StreamResampler`] buffers whatever it is given and
//! feeds rubato fixed blocks of `chunk_in` samples, so the output depends only on the
//! signal, never on how it was chunked; [`resample`] is a single push followed by
//! [`StreamResampler::finish`].
//!
//! Alignment. rubato's `Async` sinc resampler delays its output by about half the filter
//! length, and its own `output_delay()` rounds that delay to whole output frames, which
//! would leave a sub-sample shift. We instead work out the delay exactly from how rubato
//! indexes its filter table (rubato 5.0.1, `src/asynchro_sinc.rs` `InnerSinc::process`
//! and `src/sinc.rs` `make_sincs`): with `N` taps, `F` table branches and a step of
//! `T = from / to` input samples per output sample, output frame `k` (0-based) is centred
//! on input time `(k + 1) T - N / 2 + 1 / F`. We prepend `lead_in` zero samples and drop
//! the first `delay_out` outputs, choosing them so that kept sample `j` lands on input time
//! `j T` exactly. With `p / q = to / from` in lowest terms and `F = p`, this asks for
//! `p (N / 2 + lead_in) ≡ 1 (mod q)`, which always has a solution `lead_in < q`.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Indexing, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

use super::{Pcm, check_sample_rate};
use crate::{Error, Result};

/// Filter length in input samples (taps) of the sinc filter.
const SINC_LEN: usize = 256;
/// Largest `p` (in `p / q = to / from`) for which the exact polyphase table is built
/// (`SINC_LEN * p` floats: 1 MiB at the limit).
const MAX_POLYPHASE_BRANCHES: u64 = 1024;
/// Table branches for ratios with a larger `p`, interpolated cubically between.
const CUBIC_OVERSAMPLING: usize = 256;
/// Input block size fed to rubato per call, in samples.
const MAX_CHUNK_IN: usize = 1024;
/// Upper bound on output samples per rubato call, which bounds its scratch buffer for
/// extreme upsampling ratios.
const MAX_OUT_PER_CHUNK: usize = 16_384;

/// Resamples mono audio to `to_hz` with a 256-tap windowed-sinc filter.
///
/// Input `(n_samples,)` at `pcm.sample_rate_hz`; output `(round(n_samples * to_hz /
/// from_hz),)` at `to_hz`, time-aligned with the input (output sample `j` is the input
/// evaluated at time `j / to_hz` s). Same rates return a copy. Fails with
/// [`Error::InvalidSampleRate`] for a rate outside 1 Hz ..= 1 MHz and
/// [`Error::NonFiniteSample`] for NaN/∞ input. Bit-identical to feeding the same samples
/// through a [`StreamResampler`] in any chunking.
pub fn resample(pcm: &Pcm, to_hz: u32) -> Result<Pcm> {
    let from_hz = pcm.sample_rate_hz;
    let _span = tracing::debug_span!(
        "audio.resample",
        from_hz,
        to_hz,
        n_samples = pcm.samples.len()
    )
    .entered();
    let mut resampler = StreamResampler::new(from_hz, to_hz)?;
    let mut samples = resampler.push(&pcm.samples)?;
    samples.extend(resampler.finish()?);
    Ok(Pcm {
        samples,
        sample_rate_hz: to_hz,
    })
}

/// A resampler for live audio: push chunks of any size, get resampled audio back.
///
/// The output of any sequence of [`push`](Self::push) calls followed by
/// [`finish`](Self::finish) is bit-identical to [`resample`] of the concatenated input.
/// Output lags input by about 128 input samples plus one internal block of up to 1024
/// (the filter needs samples on both sides of each output instant); `finish` flushes
/// that tail. This is per-stream state: give each stream its own.
#[derive(Debug)]
pub struct StreamResampler {
    from_hz: u32,
    to_hz: u32,
    /// `None` when the rates are equal (pass-through).
    sinc: Option<SincState>,
    /// Input samples pushed since the start of the stream.
    n_in: u64,
    /// Output samples returned since the start of the stream.
    n_out: u64,
}

#[derive(Debug)]
struct SincState {
    from_hz: u32,
    to_hz: u32,
    resampler: Async<f32>,
    /// Samples per rubato call.
    chunk_in: usize,
    /// Input not yet fed to rubato; always shorter than `chunk_in` between calls.
    pending: Vec<f32>,
    /// rubato's output buffer, `output_frames_max()` long.
    scratch: Vec<f32>,
    /// Zeros fed before the signal to make the delay a whole number of output samples.
    lead_in: u64,
    /// Output samples to drop at the start of a stream.
    delay_out: u64,
    /// Of `delay_out`, how many are still to drop.
    to_skip: u64,
}

impl StreamResampler {
    /// A resampler from `from_hz` to `to_hz`.
    ///
    /// Fails with [`Error::InvalidSampleRate`] if either rate is outside 1 Hz ..= 1 MHz.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self> {
        check_sample_rate(from_hz)?;
        check_sample_rate(to_hz)?;
        let sinc = if from_hz == to_hz {
            None
        } else {
            Some(SincState::new(from_hz, to_hz)?)
        };
        Ok(StreamResampler {
            from_hz,
            to_hz,
            sinc,
            n_in: 0,
            n_out: 0,
        })
    }

    /// The input rate, in Hz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// The output rate, in Hz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Resamples the next `chunk` of the stream, `(n,)` samples at `from_hz` for any `n`.
    ///
    /// Returns the output samples that are complete so far (possibly none). Fails with
    /// [`Error::NonFiniteSample`] on NaN/∞, with `index` counted from the start of the
    /// stream; the stream is left as it was before the call.
    pub fn push(&mut self, chunk: &[f32]) -> Result<Vec<f32>> {
        if let Some(i) = chunk.iter().position(|s| !s.is_finite()) {
            return Err(Error::NonFiniteSample {
                index: usize::try_from(self.n_in)
                    .unwrap_or(usize::MAX)
                    .saturating_add(i),
                value: chunk[i],
            });
        }
        self.n_in += chunk.len() as u64;
        let out = match &mut self.sinc {
            None => chunk.to_vec(),
            Some(sinc) => {
                let mut out = Vec::with_capacity(
                    (chunk.len() as f64 * f64::from(self.to_hz) / f64::from(self.from_hz)) as usize
                        + 1,
                );
                sinc.feed(chunk, &mut out)?;
                out
            }
        };
        self.n_out += out.len() as u64;
        Ok(out)
    }

    /// Ends the stream: returns the remaining output and resets for a new stream.
    ///
    /// After `finish`, the stream's output totals exactly `round(n_in * to_hz / from_hz)`
    /// samples, `n_in` being all samples pushed since the start or the last reset.
    pub fn finish(&mut self) -> Result<Vec<f32>> {
        let n_total = rounded_output_len(self.n_in, self.from_hz, self.to_hz);
        let n_left = usize::try_from(n_total.saturating_sub(self.n_out)).map_err(|_| {
            Error::invalid("stream length", "fewer than usize::MAX samples", n_total)
        })?;
        let mut out = Vec::with_capacity(n_left);
        if let Some(sinc) = &mut self.sinc {
            sinc.flush(n_left, &mut out)?;
        }
        self.reset()?;
        Ok(out)
    }

    /// Discards all state and starts a new stream.
    pub fn reset(&mut self) -> Result<()> {
        self.n_in = 0;
        self.n_out = 0;
        if let Some(sinc) = &mut self.sinc {
            sinc.reset()?;
        }
        Ok(())
    }
}

/// `round(n_in * to / from)`, halves rounded up, in exact integer arithmetic.
fn rounded_output_len(n_in: u64, from_hz: u32, to_hz: u32) -> u64 {
    let from = u128::from(from_hz);
    let num = 2 * u128::from(n_in) * u128::from(to_hz) + from;
    u64::try_from(num / (2 * from)).unwrap_or(u64::MAX)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The inverse of `a` modulo `m` (`gcd(a, m) == 1`, `m >= 1`); 0 when `m == 1`.
fn mod_inverse(a: u64, m: u64) -> u64 {
    // Extended Euclid on signed values; all magnitudes stay below 2^21 here.
    let (mut r0, mut r1) = (i128::from(a % m), i128::from(m));
    let (mut s0, mut s1) = (1i128, 0i128);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (s0, s1) = (s1, s0 - q * s1);
    }
    let m = i128::from(m);
    u64::try_from(s0.rem_euclid(m)).unwrap_or(0)
}

fn rubato_error(from_hz: u32, to_hz: u32, e: impl std::fmt::Display) -> Error {
    Error::invalid(
        format!("resampling {from_hz} Hz -> {to_hz} Hz"),
        "a ratio and buffers rubato accepts",
        e,
    )
}

impl SincState {
    fn new(from_hz: u32, to_hz: u32) -> Result<Self> {
        let g = gcd(u64::from(from_hz), u64::from(to_hz));
        let (p, q) = (u64::from(to_hz) / g, u64::from(from_hz) / g);
        let ratio = f64::from(to_hz) / f64::from(from_hz);
        let half_taps = (SINC_LEN / 2) as u64;

        let (oversampling, interpolation, lead_in, delay_out) = if p <= MAX_POLYPHASE_BRANCHES {
            // Every output instant is a multiple of 1/p input samples, so a table of p
            // branches holds exactly the filters needed: no interpolation error, and the
            // delay can be made exact (see the module doc).
            let lead_in = (mod_inverse(p, q) + q - half_taps % q) % q;
            // `p (N/2 + lead_in) - 1` is a positive multiple of q, so this is exact.
            let delay_out = ((p * (half_taps + lead_in)).saturating_sub(1) / q).saturating_sub(1);
            (
                p as usize,
                SincInterpolationType::Nearest,
                lead_in,
                delay_out,
            )
        } else {
            // An unusual ratio: interpolate between branches. The delay is then rounded
            // to the nearest output sample (at most half an output sample off).
            let f = CUBIC_OVERSAMPLING as f64;
            let delay = ((half_taps as f64 - 1.0 / f) * ratio - 1.0)
                .round()
                .max(0.0);
            (
                CUBIC_OVERSAMPLING,
                SincInterpolationType::Cubic,
                0,
                delay as u64,
            )
        };
        let params = SincInterpolationParameters::new(SINC_LEN, WindowFunction::BlackmanHarris2)
            .oversampling_factor(oversampling)
            .interpolation(interpolation);
        let chunk_in =
            (MAX_OUT_PER_CHUNK as f64 / ratio.ceil()).clamp(1.0, MAX_CHUNK_IN as f64) as usize;
        let resampler = Async::<f32>::new_sinc(ratio, 1.0, &params, chunk_in, 1, FixedAsync::Input)
            .map_err(|e| rubato_error(from_hz, to_hz, e))?;
        let scratch = vec![0.0; resampler.output_frames_max()];
        tracing::debug!(
            from_hz,
            to_hz,
            oversampling,
            chunk_in,
            lead_in,
            delay_out,
            "sinc resampler"
        );
        let mut state = SincState {
            from_hz,
            to_hz,
            resampler,
            chunk_in,
            pending: Vec::with_capacity(chunk_in),
            scratch,
            lead_in,
            delay_out,
            to_skip: delay_out,
        };
        state.reset()?;
        Ok(state)
    }

    /// Back to the start of a stream: clean filter state, lead-in zeros fed.
    fn reset(&mut self) -> Result<()> {
        self.resampler.reset();
        self.pending.clear();
        self.to_skip = self.delay_out;
        let zeros = vec![0.0; self.chunk_in];
        let mut left = self.lead_in;
        let mut out = Vec::new();
        while left > 0 {
            let n = usize::try_from(left).map_or(self.chunk_in, |l| l.min(self.chunk_in));
            self.feed(&zeros[..n], &mut out)?;
            left -= n as u64;
        }
        // The lead-in only ever produces output inside the skipped delay.
        debug_assert!(out.is_empty());
        Ok(())
    }

    /// Appends `input` to the stream, writing completed output to `out`.
    fn feed(&mut self, mut input: &[f32], out: &mut Vec<f32>) -> Result<()> {
        if !self.pending.is_empty() {
            let take = (self.chunk_in - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < self.chunk_in {
                return Ok(());
            }
            let block = std::mem::take(&mut self.pending);
            let result = self.process_block(&block, None, out);
            self.pending = block;
            self.pending.clear();
            result?;
        }
        let mut blocks = input.chunks_exact(self.chunk_in);
        for block in &mut blocks {
            self.process_block(block, None, out)?;
        }
        self.pending.extend_from_slice(blocks.remainder());
        Ok(())
    }

    /// Feeds the pending tail and then silence until `n_left` more samples are out.
    fn flush(&mut self, n_left: usize, out: &mut Vec<f32>) -> Result<()> {
        let start = out.len();
        let tail = std::mem::take(&mut self.pending);
        self.process_block(&tail, Some(tail.len()), out)?;
        // Each silent block advances the input by `chunk_in`, and the filter needs only
        // `SINC_LEN / 2` samples of look-ahead, so this ends after a few blocks (or, at
        // extreme downsampling, after as many blocks as one output sample spans).
        while out.len() - start < n_left {
            self.process_block(&[], Some(0), out)?;
        }
        out.truncate(start + n_left);
        Ok(())
    }

    /// One rubato call on exactly `chunk_in` samples (fewer with `partial`, padded with
    /// zeros), dropping what is left of the start-up delay.
    fn process_block(
        &mut self,
        block: &[f32],
        partial: Option<usize>,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let (from_hz, to_hz) = (self.from_hz, self.to_hz);
        let input = InterleavedSlice::new(block, 1, block.len())
            .map_err(|e| rubato_error(from_hz, to_hz, e))?;
        let n_scratch = self.scratch.len();
        let mut output = InterleavedSlice::new_mut(&mut self.scratch, 1, n_scratch)
            .map_err(|e| rubato_error(from_hz, to_hz, e))?;
        let indexing = partial.map(|n| Indexing::new().partial_len(n));
        let (_, n_written) = self
            .resampler
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|e| rubato_error(from_hz, to_hz, e))?;
        let skip = usize::try_from(self.to_skip).map_or(n_written, |s| s.min(n_written));
        self.to_skip -= skip as u64;
        out.extend_from_slice(&self.scratch[skip..n_written]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_helpers() {
        assert_eq!(gcd(44_100, 16_000), 100);
        assert_eq!(gcd(7, 1), 1);
        for (a, m) in [
            (160u64, 441u64),
            (1, 3),
            (2, 1),
            (320, 441),
            (16_000, 999_983),
        ] {
            let inv = mod_inverse(a, m);
            assert_eq!((a * inv) % m, 1 % m, "{a} mod {m}");
        }
        assert_eq!(rounded_output_len(44_100, 44_100, 16_000), 16_000);
        assert_eq!(rounded_output_len(3, 48_000, 16_000), 1);
        // 1 * 16000 / 48000 = 0.333 -> 0; 2 * 16000/48000 = 0.667 -> 1.
        assert_eq!(rounded_output_len(1, 48_000, 16_000), 0);
        assert_eq!(rounded_output_len(2, 48_000, 16_000), 1);
        assert_eq!(rounded_output_len(5, 8_000, 16_000), 10);
    }

    /// The derivation in the module doc, checked against rubato itself: an impulse at
    /// input sample `m` must peak at the output sample nearest `m * to / from`, and
    /// symmetrically around it when that instant falls on an output sample.
    #[test]
    fn impulse_lands_on_its_instant() {
        for (from, to) in [
            (48_000, 16_000),
            (8_000, 16_000),
            (44_100, 16_000),
            (16_000, 44_100),
        ] {
            let g = gcd(from as u64, to as u64) as usize;
            let q = from as usize / g;
            // An input instant that is exactly an output instant.
            let m = 1000usize.div_ceil(q) * q;
            let mut x = vec![0.0f32; m + 2000];
            x[m] = 1.0;
            let y = resample(
                &Pcm {
                    samples: x,
                    sample_rate_hz: from,
                },
                to,
            )
            .unwrap()
            .samples;
            let j = m * to as usize / from as usize;
            let peak = (0..y.len())
                .max_by(|&a, &b| y[a].abs().total_cmp(&y[b].abs()))
                .unwrap();
            assert_eq!(peak, j, "{from} -> {to}");
            for d in 1..20 {
                assert!(
                    (y[j - d] - y[j + d]).abs() < 1e-4,
                    "{from} -> {to}: asymmetric at ±{d}: {} vs {}",
                    y[j - d],
                    y[j + d]
                );
            }
        }
    }
}
