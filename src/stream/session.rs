//! One live stream: audio in on the caller's thread, compute on a worker thread, events
//! out through a channel.
//!
//! `push_audio` only resamples (cheap) and queues; the VAD and the model run on the
//! session's own thread, so a capture callback or an async task is never held up by a
//! decode. The queue is bounded in seconds of audio. What happens when it fills is the
//! recognizer's [`Pacing`]: a file reader waits; a microphone never waits, and audio that
//! cannot be queued is dropped, counted and reported, never silently lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::budget::Budget;
use super::event::{Emitted, Event};
use super::options::{Pacing, StreamOptions};
use super::pipeline::Pipeline;
use super::vad::Vad;
use crate::audio::{SAMPLE_RATE_HZ, StreamResampler, check_sample_rate};
use crate::model::Model;
use crate::{Error, Result};

/// What a session has done so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionStats {
    /// Audio pushed, seconds (after resampling to 16 kHz).
    pub audio_in_s: f64,
    /// Audio the worker has processed, seconds.
    pub audio_processed_s: f64,
    /// Audio queued and not yet processed now, seconds: how far compute is behind.
    pub lag_s: f64,
    /// The largest lag seen, seconds.
    pub max_lag_s: f64,
    /// Audio dropped because the queue was full (real-time pacing only), seconds.
    pub dropped_s: f64,
    /// Partial decodes skipped or abandoned to catch up with real time.
    pub partials_skipped: u64,
    /// Partial events emitted.
    pub n_partials: u64,
    /// Final events emitted.
    pub n_finals: u64,
    /// Time the worker spent computing, seconds.
    pub compute_s: f64,
    /// `compute_s / audio_processed_s`: below 1 keeps up with real time.
    pub real_time_factor: f64,
}

enum Item {
    Audio(Vec<f32>),
    /// Samples dropped here.
    Gap(u64),
    Flush,
    Reset,
}

struct Inbox {
    items: VecDeque<Item>,
    /// Flush requests queued, and how many the worker has completed.
    flushes_asked: u64,
    flushes_done: u64,
    closed: bool,
    /// Why the worker stopped, when it failed.
    failed: Option<String>,
}

struct Shared {
    inbox: Mutex<Inbox>,
    /// The worker waits here for items.
    wake: Condvar,
    /// Producers wait here for room, and `flush` for completion.
    room: Condvar,
    /// Samples queued and not yet processed.
    queued: AtomicU64,
    stats: Mutex<SessionStats>,
    skipped: AtomicU64,
    started: Instant,
    realtime: bool,
    max_queue: u64,
    /// A partial decode is abandoned beyond this backlog.
    abort_queue: u64,
    /// Partials are skipped beyond this backlog.
    lag_queue: u64,
    stopping: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&self) -> MutexGuard<'_, SessionStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Budget for Shared {
    fn lagging(&self) -> bool {
        self.realtime && self.queued.load(Ordering::Relaxed) > self.lag_queue
    }
    fn abort(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
            || (self.realtime && self.queued.load(Ordering::Relaxed) > self.abort_queue)
    }
    fn skipped_partial(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }
    fn speculate(&self) -> bool {
        self.realtime && !self.lagging()
    }
    fn realtime(&self) -> bool {
        self.realtime
    }
}

/// One live stream over a [`Recognizer`].
///
/// Push audio at any sample rate with [`Session::push_audio`], read events with
/// [`Session::poll_event`] or [`Session::recv_event_timeout`], end the input with
/// [`Session::flush`]. Dropping the session stops its worker.
pub struct Session {
    model: Model,
    shared: Arc<Shared>,
    events: Receiver<Emitted>,
    worker: Option<JoinHandle<()>>,
    resampler: Option<StreamResampler>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("model", &self.model)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn start(model: Model, vad: &Vad, opts: &StreamOptions) -> Result<Session> {
        let pipeline = Pipeline::new(&model, vad, opts)?;
        let sr = f64::from(SAMPLE_RATE_HZ);
        let (realtime, max_queue_s) = match opts.pacing {
            Pacing::RealTime { max_queue_s } => (true, max_queue_s),
            Pacing::AsFastAsPossible { max_queue_s } => (false, max_queue_s),
        };
        let step_s = f64::from(opts.whisper.step_ms) / 1e3;
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox {
                items: VecDeque::new(),
                flushes_asked: 0,
                flushes_done: 0,
                closed: false,
                failed: None,
            }),
            wake: Condvar::new(),
            room: Condvar::new(),
            queued: AtomicU64::new(0),
            stats: Mutex::new(SessionStats::default()),
            skipped: AtomicU64::new(0),
            started: Instant::now(),
            realtime,
            max_queue: (f64::from(max_queue_s) * sr) as u64,
            // Skip a partial when a step of audio is waiting; abandon one in progress when
            // three are.
            lag_queue: (step_s.max(0.1) * sr) as u64,
            abort_queue: (3.0 * step_s.max(0.1) * sr) as u64,
            stopping: AtomicBool::new(false),
        });
        let (tx, events) = channel();
        let worker_shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("hearken-session".into())
            .spawn(move || worker(pipeline, &worker_shared, &tx))
            .map_err(|e| Error::SessionClosed {
                reason: format!("cannot start the worker thread: {e}"),
            })?;
        Ok(Session {
            model,
            shared,
            events,
            worker: Some(worker),
            resampler: None,
        })
    }

    /// The model this session runs.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Queues `samples` (mono, `[-1, 1]`) at `sample_rate_hz` (any rate: a streaming
    /// resampler converts to 16 kHz; a change of rate flushes the old resampler first).
    ///
    /// With [`Pacing::AsFastAsPossible`] it waits while the queue is full; with
    /// [`Pacing::RealTime`] it never waits and drops what does not fit. Fails with
    /// [`Error::NonFiniteSample`] or [`Error::InvalidSampleRate`] on bad input (the stream
    /// is unchanged), and with [`Error::SessionClosed`] when the worker has failed.
    pub fn push_audio(&mut self, samples: &[f32], sample_rate_hz: u32) -> Result<()> {
        check_sample_rate(sample_rate_hz)?;
        let mut tail = Vec::new();
        if self
            .resampler
            .as_ref()
            .is_some_and(|r| r.from_hz() != sample_rate_hz)
            && let Some(mut old) = self.resampler.take()
        {
            tail = old.finish()?;
        }
        if self.resampler.is_none() {
            self.resampler = Some(StreamResampler::new(sample_rate_hz, SAMPLE_RATE_HZ)?);
        }
        let Some(resampler) = self.resampler.as_mut() else {
            return Ok(());
        };
        let mut out = resampler.push(samples)?;
        if !tail.is_empty() {
            tail.append(&mut out);
            out = tail;
        }
        self.enqueue(out)
    }

    fn enqueue(&self, samples: Vec<f32>) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let n = samples.len() as u64;
        let mut inbox = self.shared.lock();
        self.check(&inbox)?;
        if self.shared.realtime {
            let queued = self.shared.queued.load(Ordering::Relaxed);
            if queued + n > self.shared.max_queue {
                match inbox.items.back_mut() {
                    Some(Item::Gap(g)) => *g += n,
                    _ => inbox.items.push_back(Item::Gap(n)),
                }
                let mut st = self.shared.stats();
                st.dropped_s += n as f64 / f64::from(SAMPLE_RATE_HZ);
                st.audio_in_s += n as f64 / f64::from(SAMPLE_RATE_HZ);
                drop(st);
                self.shared.wake.notify_one();
                return Ok(());
            }
        } else {
            while self.shared.queued.load(Ordering::Relaxed) > 0
                && self.shared.queued.load(Ordering::Relaxed) + n > self.shared.max_queue
            {
                inbox = self
                    .shared
                    .room
                    .wait(inbox)
                    .unwrap_or_else(|e| e.into_inner());
                self.check(&inbox)?;
            }
        }
        let queued = self.shared.queued.fetch_add(n, Ordering::Relaxed) + n;
        inbox.items.push_back(Item::Audio(samples));
        let mut st = self.shared.stats();
        st.audio_in_s += n as f64 / f64::from(SAMPLE_RATE_HZ);
        let lag = queued as f64 / f64::from(SAMPLE_RATE_HZ);
        st.max_lag_s = st.max_lag_s.max(lag);
        drop(st);
        self.shared.wake.notify_one();
        Ok(())
    }

    fn check(&self, inbox: &Inbox) -> Result<()> {
        match &inbox.failed {
            Some(reason) => Err(Error::SessionClosed {
                reason: reason.clone(),
            }),
            None if inbox.closed => Err(Error::SessionClosed {
                reason: "the session was closed".into(),
            }),
            None => Ok(()),
        }
    }

    /// Ends the input: processes everything queued, finalizes open speech, and returns
    /// when the last events are in the channel. Audio pushed afterwards starts a new
    /// stretch of the same stream (times continue).
    pub fn flush(&mut self) -> Result<()> {
        if let Some(r) = self.resampler.as_mut() {
            let tail = r.finish()?;
            self.enqueue(tail)?;
        }
        let mut inbox = self.shared.lock();
        self.check(&inbox)?;
        inbox.flushes_asked += 1;
        let ticket = inbox.flushes_asked;
        inbox.items.push_back(Item::Flush);
        self.shared.wake.notify_one();
        while inbox.flushes_done < ticket {
            self.check(&inbox)?;
            inbox = self
                .shared
                .room
                .wait(inbox)
                .unwrap_or_else(|e| e.into_inner());
        }
        self.check(&inbox)
    }

    /// Forgets the stream: queued audio, open speech and the text context. Times restart
    /// at 0. Events already emitted stay in the channel.
    pub fn reset(&mut self) -> Result<()> {
        if let Some(r) = self.resampler.as_mut() {
            r.reset()?;
        }
        let mut inbox = self.shared.lock();
        self.check(&inbox)?;
        let dropped: u64 = inbox
            .items
            .iter()
            .map(|i| match i {
                Item::Audio(a) => a.len() as u64,
                _ => 0,
            })
            .sum();
        inbox.items.retain(|i| matches!(i, Item::Flush));
        self.shared.queued.fetch_sub(dropped, Ordering::Relaxed);
        inbox.items.push_back(Item::Reset);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// The next event, if one is ready.
    pub fn poll_event(&self) -> Option<Emitted> {
        self.events.try_recv().ok()
    }

    /// The next event, waiting up to `timeout`.
    pub fn recv_event_timeout(&self, timeout: Duration) -> Option<Emitted> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Every event ready now, without waiting.
    pub fn events(&self) -> impl Iterator<Item = Emitted> + '_ {
        self.events.try_iter()
    }

    /// What the session has done so far.
    pub fn stats(&self) -> SessionStats {
        let mut s = self.shared.stats().clone();
        s.lag_s = self.shared.queued.load(Ordering::Relaxed) as f64 / f64::from(SAMPLE_RATE_HZ);
        s.partials_skipped = self.shared.skipped.load(Ordering::Relaxed);
        s.real_time_factor = if s.audio_processed_s > 0.0 {
            s.compute_s / s.audio_processed_s
        } else {
            0.0
        };
        s
    }

    /// Seconds since the session started (the clock of [`Emitted::wall_s`]).
    pub fn elapsed_s(&self) -> f64 {
        self.shared.started.elapsed().as_secs_f64()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// The worker: takes one item at a time, so the queue length is the backlog.
fn worker(mut pipeline: Pipeline, shared: &Shared, tx: &Sender<Emitted>) {
    let mut events = Vec::new();
    loop {
        let item = {
            let mut inbox = shared.lock();
            loop {
                if let Some(item) = inbox.items.pop_front() {
                    break item;
                }
                if inbox.closed {
                    return;
                }
                inbox = shared.wake.wait(inbox).unwrap_or_else(|e| e.into_inner());
            }
        };
        let t = Instant::now();
        let mut processed = 0u64;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &item {
            Item::Audio(a) => {
                processed = a.len() as u64;
                pipeline.push(a, shared, &mut events)
            }
            Item::Gap(n) => pipeline.gap(*n, shared, &mut events),
            Item::Flush => pipeline.flush(shared, &mut events),
            Item::Reset => {
                pipeline.reset();
                Ok(())
            }
        }))
        .unwrap_or_else(|_| {
            Err(Error::SessionClosed {
                reason: "the session's worker panicked".into(),
            })
        });
        let wall_s = shared.started.elapsed().as_secs_f64();
        {
            let mut st = shared.stats();
            st.compute_s += t.elapsed().as_secs_f64();
            st.audio_processed_s += processed as f64 / f64::from(SAMPLE_RATE_HZ);
            for e in &events {
                match e {
                    Event::Partial { .. } => st.n_partials += 1,
                    Event::Final { .. } => st.n_finals += 1,
                    _ => {}
                }
            }
        }
        for event in events.drain(..) {
            // A dropped receiver means nobody listens any more; keep going until closed.
            let _ = tx.send(Emitted { event, wall_s });
        }
        shared.queued.fetch_sub(
            processed.min(shared.queued.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let mut inbox = shared.lock();
        if let Item::Flush = item {
            inbox.flushes_done += 1;
        }
        if let Err(e) = result {
            inbox.failed = Some(e.to_string());
            inbox.closed = true;
            shared.room.notify_all();
            return;
        }
        drop(inbox);
        shared.room.notify_all();
    }
}
