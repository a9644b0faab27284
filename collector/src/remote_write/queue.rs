//! The bounded queue of samples waiting for one remote write endpoint.
//!
//! Owns: holding samples in the order they were enqueued, as chunks of one series each;
//! the bound (counted in samples); dropping the oldest samples when a push overflows it; and
//! waking the sender. A push never waits, so the collector's ingest path is never held up by
//! a slow or dead receiver.
//!
//! Leaves out: batching by deadline and sending (the sender), metrics other than its length.
//!
//! Order: [`SampleQueue::take`] returns samples in push order, so a series' samples leave in
//! the order the store gave them. A dropped sample is always one of the oldest queued.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::IntGauge;
use tokio::sync::Notify;

use crate::series::{Labels, Sample};

/// Samples of one series, in push order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chunk {
    /// The series, shared by every chunk of it and every endpoint's queue.
    pub labels: Arc<Labels>,
    /// Never empty.
    pub samples: Vec<Sample>,
}

/// A FIFO of samples bounded by a count; see the module doc.
#[derive(Debug)]
pub(crate) struct SampleQueue {
    capacity: usize,
    inner: Mutex<Inner>,
    ready: Notify,
    /// The number of queued samples, kept current under the lock.
    length: IntGauge,
}

#[derive(Debug, Default)]
struct Inner {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl SampleQueue {
    /// An empty queue holding at most `capacity` samples (at least 1); `length` follows its
    /// length.
    pub fn new(capacity: usize, length: IntGauge) -> Self {
        length.set(0);
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            ready: Notify::new(),
            length,
        }
    }

    /// Appends the samples of each series, then drops the oldest samples over capacity.
    /// Returns how many samples were dropped (queued ones and new ones alike). Never waits
    /// on anything but the queue's short lock.
    pub fn push<'a>(
        &self,
        series: impl IntoIterator<Item = (&'a Arc<Labels>, &'a [Sample])>,
    ) -> u64 {
        let mut inner = self.lock();
        let mut pushed = false;
        for (labels, samples) in series {
            if samples.is_empty() {
                continue;
            }
            inner.chunks.push_back(Chunk {
                labels: Arc::clone(labels),
                samples: samples.to_vec(),
            });
            inner.len += samples.len();
            pushed = true;
        }
        let over = inner.len.saturating_sub(self.capacity);
        let dropped = inner.drop_oldest(over);
        self.length.set(gauge_value(inner.len));
        drop(inner);
        if pushed {
            self.ready.notify_one();
        }
        u64::try_from(dropped).unwrap_or(u64::MAX)
    }

    /// Removes and returns up to `max` of the oldest samples, as chunks in push order (the
    /// last chunk may be the front part of a series' chunk; its rest stays queued).
    pub fn take(&self, max: usize) -> Vec<Chunk> {
        let mut inner = self.lock();
        let mut taken = Vec::new();
        let mut room = max;
        while room > 0 {
            let Some(mut chunk) = inner.chunks.pop_front() else {
                break;
            };
            if chunk.samples.len() > room {
                let rest = chunk.samples.split_off(room);
                inner.chunks.push_front(Chunk {
                    labels: Arc::clone(&chunk.labels),
                    samples: rest,
                });
            }
            room -= chunk.samples.len();
            inner.len -= chunk.samples.len();
            taken.push(chunk);
        }
        self.length.set(gauge_value(inner.len));
        taken
    }

    /// Removes everything and returns how many samples that was.
    pub fn clear(&self) -> usize {
        let mut inner = self.lock();
        let len = inner.len;
        inner.chunks.clear();
        inner.len = 0;
        self.length.set(0);
        len
    }

    /// Samples queued now.
    pub fn len(&self) -> usize {
        self.lock().len
    }

    /// Waits until the queue holds at least one sample. Cancel-safe.
    pub async fn wait_not_empty(&self) {
        loop {
            // Registering before checking means a push between the two still wakes us.
            let notified = self.ready.notified();
            if self.len() > 0 {
                return;
            }
            notified.await;
        }
    }

    /// Waits for the next push (or returns at once if one happened since the last wait).
    pub async fn pushed(&self) {
        self.ready.notified().await;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves the queue consistent (every method updates
        // `len` with the chunks), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    /// Drops `count` samples from the front; returns how many were dropped.
    fn drop_oldest(&mut self, count: usize) -> usize {
        let mut left = count;
        while left > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.samples.len() <= left {
                left -= front.samples.len();
                self.len -= front.samples.len();
                self.chunks.pop_front();
            } else {
                front.samples.drain(..left);
                self.len -= left;
                left = 0;
            }
        }
        count - left
    }
}

fn gauge_value(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Arc<Labels> {
        Arc::new(Labels::from_pairs([("__name__", name)]))
    }

    fn samples(range: std::ops::Range<i64>) -> Vec<Sample> {
        range
            .map(|t| Sample {
                timestamp_ms: t,
                value: t as f64,
            })
            .collect()
    }

    fn timestamps(chunks: &[Chunk]) -> Vec<(String, i64)> {
        chunks
            .iter()
            .flat_map(|c| {
                let name = c.labels.metric_name().unwrap_or("").to_owned();
                c.samples
                    .iter()
                    .map(move |s| (name.clone(), s.timestamp_ms))
            })
            .collect()
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_them() {
        let gauge = IntGauge::new("q", "q").unwrap();
        let queue = SampleQueue::new(5, gauge.clone());
        let (a, b) = (labels("a"), labels("b"));
        assert_eq!(queue.push([(&a, samples(0..3).as_slice())]), 0);
        // 3 + 4 = 7 > 5: the two oldest of "a" go.
        assert_eq!(queue.push([(&b, samples(10..14).as_slice())]), 2);
        assert_eq!(queue.len(), 5);
        assert_eq!(gauge.get(), 5);
        let taken = queue.take(100);
        assert_eq!(
            timestamps(&taken),
            [("a", 2), ("b", 10), ("b", 11), ("b", 12), ("b", 13)].map(|(n, t)| (n.to_owned(), t))
        );
        assert_eq!(gauge.get(), 0);
    }

    #[test]
    fn a_push_larger_than_the_queue_keeps_its_newest() {
        let queue = SampleQueue::new(3, IntGauge::new("q", "q").unwrap());
        let a = labels("a");
        assert_eq!(queue.push([(&a, samples(0..10).as_slice())]), 7);
        let taken = queue.take(10);
        assert_eq!(taken[0].samples, samples(7..10));
    }

    #[test]
    fn take_splits_a_chunk_and_keeps_the_rest_in_front() {
        let queue = SampleQueue::new(100, IntGauge::new("q", "q").unwrap());
        let (a, b) = (labels("a"), labels("b"));
        queue.push([
            (&a, samples(0..5).as_slice()),
            (&b, samples(0..2).as_slice()),
        ]);
        let first = queue.take(3);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].samples, samples(0..3));
        let second = queue.take(3);
        assert_eq!(second[0].samples, samples(3..5));
        assert_eq!(second[1].samples, samples(0..1));
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.clear(), 1);
        assert!(queue.take(10).is_empty());
    }

    #[test]
    fn empty_series_are_ignored() {
        let queue = SampleQueue::new(10, IntGauge::new("q", "q").unwrap());
        assert_eq!(queue.push([(&labels("a"), [].as_slice())]), 0);
        assert_eq!(queue.len(), 0);
    }

    #[tokio::test]
    async fn wait_not_empty_sees_a_push_made_before_it_waits() {
        let queue = SampleQueue::new(10, IntGauge::new("q", "q").unwrap());
        queue.push([(&labels("a"), samples(0..1).as_slice())]);
        queue.wait_not_empty().await;
    }
}
