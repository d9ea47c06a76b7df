//! Reading a changelog partition back: every account's last state, the completion
//! records, and what cannot be used (see the parent module for the protocol).

use super::*;

/// What reading a changelog partition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// The source offset of the last usable completion record read, if any.
    pub resume_at: Option<i64>,
    pub records: u64,
    /// The changelog offset after the last record read: where this instance's view of
    /// the partition ends (see [`Changelog::write`]).
    pub end: i64,
    /// Records that could not be used and were not superseded by a later one of their
    /// key, in offset order (see [`crate::quarantine`]).
    pub unusable: Vec<Quarantined>,
    /// The readable completion records, in order.
    pub completions: Vec<Completion>,
    /// Accounts whose last record is ahead of `resume_at` (written by a checkpoint whose
    /// completion record never came: a crash between the two), with the source offset
    /// their state is complete up to: their records before it must not be applied again.
    pub ahead: HashMap<Vec<u8>, i64>,
    /// The source partition's high watermark when the replay began: completions past it
    /// are checked by [`Changelog::drop_completions_beyond_source`].
    pub source_end: i64,
}

/// A readable completion record, and the unusable completion records before it that it
/// supersedes (unless it is itself past the source's end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Completion {
    /// Where it is in the changelog.
    pub at: i64,
    /// The source offset it says the state is complete up to.
    pub offset: i64,
    pub superseded: Vec<Quarantined>,
    /// The accounts it took out of [`Replayed::ahead`], when it is past the source's
    /// high watermark (they are ahead again should it be dropped).
    pub settled: Vec<(Vec<u8>, i64)>,
}

impl Changelog {
    /// Sets aside the completion records at the end of `replayed` that are past the end
    /// of source partition `partition` (resuming there would leave it unread for good),
    /// and resumes from the last one within it. The high watermark answers at once for
    /// most; one past it is checked by reading the source there, since some brokers
    /// (tansu) report a watermark short of the log's end.
    pub(crate) fn drop_completions_beyond_source(
        &self,
        partition: i32,
        replayed: &mut Replayed,
    ) -> Result<(), SourceError> {
        let mut probes = 0;
        while let Some(&Completion { at, offset, .. }) = replayed.completions.last() {
            // After a few answers of "past the end" (a source topic recreated, its old
            // completions all past its new end), the rest past the watermark are taken
            // as past the end too, rather than read one by one.
            if offset <= replayed.source_end
                || (probes < MAX_SOURCE_PROBES && self.source_reaches(partition, offset)?)
            {
                break;
            }
            probes += 1;
            if let Some(dropped) = replayed.completions.pop() {
                replayed.unusable.extend(dropped.superseded);
                for (account, complete_to) in dropped.settled {
                    replayed.ahead.entry(account).or_insert(complete_to);
                }
            }
            replayed.unusable.push(Quarantined {
                offset: at,
                key: Vec::new(),
                value: Some(completion_value(offset)),
                why: Unusable::CompletionBeyondSource,
                detail: format!(
                    "offset {offset}, past the end of {} partition {partition}",
                    self.source_topic
                ),
            });
            replayed.resume_at = replayed.completions.last().map(|c| c.offset);
        }
        replayed
            .unusable
            .sort_unstable_by_key(|record| record.offset);
        Ok(())
    }

    /// Whether source partition `partition` goes on to `offset`, i.e. holds a record at
    /// `offset - 1` or after: read there, with no offset reset, for up to
    /// [`SOURCE_PROBE`].
    fn source_reaches(&self, partition: i32, offset: i64) -> Result<bool, SourceError> {
        let consumer: BaseConsumer = self
            .client
            .clone()
            .set("group.id", "radar-changelog-restore")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "error")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(
            &self.source_topic,
            partition,
            Offset::Offset(offset.saturating_sub(1)),
        )?;
        consumer.assign(&assignment)?;
        let deadline = Instant::now() + SOURCE_PROBE;
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(_)) => return Ok(true),
                // At the end, or out of range: nothing there.
                Some(Err(KafkaError::PartitionEOF(_))) => return Ok(false),
                Some(Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange,
                ))) => return Ok(false),
                // A broker away: librdkafka retries until the deadline.
                Some(Err(_)) | None => {}
            }
        }
        // The watermark says the log ends before `offset` and reading there finds nothing
        // (tansu answers a fetch past the end with no records and no error): past it.
        // Were the completion good after all (a broker both behind on its watermark and
        // silent for the whole wait), the restore resumes from an earlier one, which
        // re-applies nothing: account records say what their state holds.
        tracing::warn!(
            topic = %self.source_topic,
            partition,
            offset,
            "reading the source where a completion record points found nothing; taken as past its end"
        );
        Ok(false)
    }

    /// The changelog offset after the last record of `partition`.
    pub(crate) fn end(&self, partition: i32) -> Result<i64, SourceError> {
        let (_, high) = self
            .producer
            .client()
            .fetch_watermarks(&self.topic, partition, TIMEOUT)?;
        Ok(high)
    }

    /// Reads `partition` from changelog offset `from` to its end into `engine`: account
    /// states replace what the engine holds, tombstones remove accounts. A record that
    /// cannot be used is not applied (an account whose last record is one is left out)
    /// and comes back in [`Replayed::unusable`]. Whether the last completion is within
    /// the source is for [`Changelog::drop_completions_beyond_source`] to say.
    pub(crate) fn replay(
        &self,
        partition: i32,
        from: i64,
        engine: &mut Engine,
    ) -> Result<Replayed, SourceError> {
        // Assigned, never subscribed: the group id is librdkafka's requirement only, and
        // nothing is committed under it.
        let consumer: BaseConsumer = self
            .client
            .clone()
            .set("group.id", "radar-changelog-restore")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            // Restore reads one partition flat out: fetch in large slices, and wait neither
            // on a fetch nor after a full queue (on tansu, 435k accounts took 3.2-3.4 s
            // with librdkafka's 500 ms and 1 s defaults, 1.3-1.5 s with these).
            .set("max.partition.fetch.bytes", "16777216")
            .set("queued.max.messages.kbytes", "262144")
            .set("fetch.wait.max.ms", "10")
            .set("fetch.queue.backoff.ms", "10")
            .create()?;
        let (low, high) = consumer.fetch_watermarks(&self.topic, partition, TIMEOUT)?;
        let (_, source_end) = consumer.fetch_watermarks(&self.source_topic, partition, TIMEOUT)?;
        let mut replayed = Replayed {
            resume_at: None,
            records: 0,
            end: from.max(high),
            unusable: Vec::new(),
            completions: Vec::new(),
            ahead: HashMap::new(),
            source_end,
        };
        let mut next = from.max(low);
        let mut last_error = None;
        if next >= high {
            return Ok(replayed);
        }
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&self.topic, partition, Offset::Offset(next))?;
        consumer.assign(&assignment)?;
        // By key: a later usable record of the same key supersedes the unusable ones.
        let mut unusable: HashMap<Vec<u8>, Vec<Quarantined>> = HashMap::new();
        let mut ahead = Ahead::default();
        // To the end of the partition: past the high watermark taken before, and until
        // the consumer says it reached the end (some brokers report a watermark short of
        // a batch's last record).
        loop {
            let message = match consumer.poll(TIMEOUT) {
                Some(Ok(message)) => message,
                Some(Err(KafkaError::PartitionEOF(_))) if next >= high => break,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                // A broker away or a leader moving: librdkafka retries; so does this loop,
                // until a whole timeout passes without a record.
                Some(Err(e)) => {
                    last_error = Some(e);
                    continue;
                }
                None => {
                    let why = last_error.map_or_else(String::new, |e| format!(" (last: {e})"));
                    return Err(SourceError::Changelog(format!(
                        "partition {partition} of {} at offset {next}: no record within 30 s, though the log goes further{why}",
                        self.topic
                    )));
                }
            };
            next = message.offset() + 1;
            replayed.end = replayed.end.max(next);
            replayed.records += 1;
            let key = message.key().unwrap_or_default();
            let value = message.payload();
            let refused = match apply(key, value, engine) {
                Ok(Some(resume_at)) => {
                    // The accounts this completion covers are no longer ahead; unless it
                    // is past the source's watermark, and may yet be dropped.
                    let settled = ahead
                        .complete(resume_at, resume_at > source_end)
                        .into_iter()
                        .map(|(account, complete_to, _)| (account, complete_to))
                        .collect();
                    replayed.resume_at = Some(resume_at);
                    replayed.completions.push(Completion {
                        at: message.offset(),
                        offset: resume_at,
                        superseded: unusable.remove(key).unwrap_or_default(),
                        settled,
                    });
                    continue;
                }
                Ok(None) => {
                    let complete_to = value.and_then(|_| complete_to(&message));
                    ahead.record(key, complete_to, replayed.resume_at, message.offset());
                    None
                }
                Err((why, detail)) => {
                    if !key.is_empty() {
                        ahead.record(key, None, replayed.resume_at, message.offset());
                    }
                    Some(Quarantined {
                        offset: message.offset(),
                        key: key.to_vec(),
                        value: value.map(<[u8]>::to_vec),
                        why,
                        detail,
                    })
                }
            };
            match refused {
                Some(record) => unusable.entry(key.to_vec()).or_default().push(record),
                None if !unusable.is_empty() => {
                    unusable.remove(key);
                }
                None => {}
            }
        }
        replayed.unusable = unusable.into_values().flatten().collect();
        replayed.ahead = ahead.into_map();
        replayed
            .unusable
            .sort_unstable_by_key(|record| record.offset);
        Ok(replayed)
    }
}

/// The source offset an account record's state is complete up to (`None` for records
/// written before radar said so).
fn complete_to(message: &impl Message) -> Option<i64> {
    let header = message
        .headers()?
        .iter()
        .find(|header| header.key == COMPLETE_TO)?;
    std::str::from_utf8(header.value?).ok()?.parse().ok()
}

/// Applies one changelog record to `engine`: `Ok(Some(offset))` for a completion record,
/// `Ok(None)` for an account's state or tombstone, or why it cannot be used (and then an
/// account's state is left out).
fn apply(
    key: &[u8],
    value: Option<&[u8]>,
    engine: &mut Engine,
) -> Result<Option<i64>, (Unusable, String)> {
    if key.is_empty() {
        let offset = value
            .and_then(|value| value.split_first())
            .filter(|(version, _)| **version == COMPLETION_VERSION)
            .and_then(|(_, offset)| <[u8; 8]>::try_from(offset).ok())
            .map(i64::from_le_bytes)
            .ok_or_else(|| {
                (
                    Unusable::Completion,
                    format!("{} bytes", value.map_or(0, <[u8]>::len)),
                )
            })?;
        return match offset {
            ..0 => Err((Unusable::Completion, format!("offset {offset}"))),
            offset => Ok(Some(offset)),
        };
    }
    let Ok(account) = std::str::from_utf8(key) else {
        // A tombstone of such a key is what the claim after an earlier restore wrote.
        return match value {
            None => Ok(None),
            Some(_) => Err((Unusable::Key, "not UTF-8".into())),
        };
    };
    match value {
        None => engine.remove_account(account),
        Some(state) => {
            if let Err(e) = engine.restore_account(account, state) {
                engine.remove_account(account);
                return Err((Unusable::State, e.to_string()));
            }
        }
    }
    Ok(None)
}
