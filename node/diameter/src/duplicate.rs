//! Duplicate detection (RFC 6733 section 6.1.2 and 3, End-to-End Identifier).
//!
//! A peer that loses a connection re-sends its unanswered requests with the T bit set, maybe
//! over another connection. The Origin-Host and End-to-End Identifier of a request identify it
//! across connections; a duplicate gets the answer the original got instead of being
//! processed twice (a login that would run twice, usage that would be counted twice).
//!
//! [`AnswerCache`] keeps the answers sent, per (Origin-Host, End-to-End Identifier), for a
//! window (RFC 6733 asks for at least the four minutes a peer may keep re-sending) and up to a
//! number of entries; the oldest go first. Sans-IO like the rest: the caller passes `now`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::message::Message;

/// The answers sent recently, to repeat to a duplicate request.
#[derive(Debug)]
pub struct AnswerCache {
    window: Duration,
    capacity: usize,
    answers: HashMap<(Box<str>, u32), Message>,
    /// Keys in the order they were recorded, with when.
    order: VecDeque<(Instant, (Box<str>, u32))>,
}

impl AnswerCache {
    /// RFC 6733 section 6.1.2: duplicates may arrive for at least four minutes.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(240);

    /// A cache holding answers for `window`, at most `capacity` of them.
    pub fn new(window: Duration, capacity: usize) -> Self {
        AnswerCache {
            window,
            capacity,
            answers: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Number of answers held.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether no answer is held.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// Records the answer sent to the request `end_to_end` from `origin_host` (compared
    /// without regard to case, as DiameterIdentity is).
    pub fn record(&mut self, now: Instant, origin_host: &str, end_to_end: u32, answer: &Message) {
        self.expire(now);
        if self.capacity == 0 {
            return;
        }
        let key: (Box<str>, u32) = (origin_host.to_ascii_lowercase().into(), end_to_end);
        if self.answers.insert(key.clone(), answer.clone()).is_none() {
            self.order.push_back((now, key));
        }
        while self.answers.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_front() else {
                break;
            };
            self.answers.remove(&oldest);
        }
    }

    /// The answer to repeat for `request` when it is a duplicate (T bit set, seen before):
    /// the recorded answer with the request's Hop-by-Hop Identifier. `None`: process it.
    pub fn duplicate_answer(
        &mut self,
        now: Instant,
        origin_host: &str,
        request: &Message,
    ) -> Option<Message> {
        if !request.header.flags.is_retransmit() {
            return None;
        }
        self.expire(now);
        let key: (Box<str>, u32) = (
            origin_host.to_ascii_lowercase().into(),
            request.header.end_to_end,
        );
        let answer = self.answers.get(&key)?;
        (answer.header.command_code == request.header.command_code).then(|| {
            let mut again = answer.clone();
            again.header.hop_by_hop = request.header.hop_by_hop;
            again
        })
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.window {
                break;
            }
            let (_, key) = self.order.pop_front().expect("front exists");
            self.answers.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::{app, command, result};
    use crate::message::CommandFlags;

    fn request(end_to_end: u32, hop_by_hop: u32, retransmit: bool) -> Message {
        let mut m = Message::request(command::AA, app::JSRC, true);
        m.header.end_to_end = end_to_end;
        m.header.hop_by_hop = hop_by_hop;
        m.header.flags = m.header.flags.with(CommandFlags::RETRANSMIT, retransmit);
        m
    }

    fn answered(req: &Message, code: u32) -> Message {
        let mut a = Message::answer_to(req);
        a.set_result_code(code);
        a
    }

    #[test]
    fn a_retransmitted_request_gets_the_recorded_answer_with_its_own_hop_by_hop() {
        let t0 = Instant::now();
        let mut cache = AnswerCache::new(AnswerCache::DEFAULT_WINDOW, 16);
        let original = request(0xabc, 1, false);
        cache.record(
            t0,
            "MX1.example",
            0xabc,
            &answered(&original, result::SUCCESS),
        );

        // Without the T bit a request is new, whatever its ids.
        assert!(
            cache
                .duplicate_answer(t0, "mx1.example", &request(0xabc, 7, false))
                .is_none()
        );
        let again = cache
            .duplicate_answer(t0, "mx1.example", &request(0xabc, 7, true))
            .expect("a duplicate");
        assert_eq!(again.header.hop_by_hop, 7);
        assert_eq!(again.header.end_to_end, 0xabc);
        assert_eq!(again.result_code(), Some(result::SUCCESS));
        // Another peer's request with the same End-to-End Identifier is not a duplicate.
        assert!(
            cache
                .duplicate_answer(t0, "mx2.example", &request(0xabc, 8, true))
                .is_none()
        );
        // Nor a request of another command.
        let mut acr = request(0xabc, 9, true);
        acr.header.command_code = command::ACCOUNTING;
        assert!(cache.duplicate_answer(t0, "mx1.example", &acr).is_none());
    }

    #[test]
    fn answers_expire_after_the_window_and_the_oldest_go_beyond_the_capacity() {
        let t0 = Instant::now();
        let mut cache = AnswerCache::new(Duration::from_secs(240), 2);
        for e2e in 1..=3 {
            let r = request(e2e, e2e, false);
            cache.record(t0, "mx1", e2e, &answered(&r, result::SUCCESS));
        }
        assert_eq!(cache.len(), 2);
        assert!(
            cache
                .duplicate_answer(t0, "mx1", &request(1, 9, true))
                .is_none(),
            "the oldest went first"
        );
        assert!(
            cache
                .duplicate_answer(t0, "mx1", &request(3, 9, true))
                .is_some()
        );
        let later = t0 + Duration::from_secs(240);
        assert!(
            cache
                .duplicate_answer(later, "mx1", &request(3, 9, true))
                .is_none()
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn recording_the_same_request_twice_keeps_one_entry() {
        let t0 = Instant::now();
        let mut cache = AnswerCache::new(Duration::from_secs(240), 4);
        let r = request(5, 5, false);
        cache.record(t0, "mx1", 5, &answered(&r, result::UNABLE_TO_COMPLY));
        cache.record(t0, "mx1", 5, &answered(&r, result::SUCCESS));
        assert_eq!(cache.len(), 1);
        let again = cache
            .duplicate_answer(t0, "mx1", &request(5, 6, true))
            .unwrap();
        assert_eq!(
            again.result_code(),
            Some(result::SUCCESS),
            "the last answer"
        );
    }
}
