//! The subscription routing trie.
//!
//! ```text
//!  writers (SUB/UNSUB)                       readers (every PUB)
//!  ── Mutex ──► copy changed path ──► ArcSwap<Snapshot> ◄── load_full / MatchCache
//! ```
//!
//! Readers never lock: they load the current immutable [`Snapshot`] and walk
//! it. Writers serialise on a mutex, copy only the nodes on the path of the
//! subject they change (`Arc::make_mut`), and publish a new snapshot with a
//! bumped generation. Every node keeps its children and its subscriptions in
//! small vectors that turn into persistent hash tries
//! (`rpds::HashTrieMapSync`) past 16 entries, so copying a node with a
//! million children or a million subscriptions costs O(log n), and an insert
//! or remove costs O(depth · log n) however many subscriptions exist.
//!
//! Matching follows nats-server: at each level the literal child for the
//! token, the `*` child and the `>` child are visited. A `*` or `>` inside a
//! published subject is an ordinary token there: it is never looked up as a
//! wildcard child, so only wildcard subscriptions match it. A published
//! subject with an empty token matches nothing (nats-server
//! `TestSublistMatchWithEmptyTokens`).
//!
//! Queue subscriptions on one node are grouped by queue name. In a
//! [`MatchResult`], a group collects the members of that queue name from
//! every matching node, so a group subscribed on both `foo.*` and `foo.bar`
//! is one group for `foo.bar`, as in nats-server.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use bytes::Bytes;
use rpds::HashTrieMapSync;

use crate::subject::{self, FWC, PWC, TSEP};

/// What a sublist stores. Identity is [`SubValue::key`]: unique per
/// subscription.
pub trait SubValue: Clone + Send + Sync + 'static {
    /// The subscription's identity; removal is by this key.
    fn key(&self) -> u64;
}

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SublistError {
    /// The subject fails [`subject::is_valid_subject`]; nats-server answers
    /// `-ERR 'Invalid Subject'`.
    InvalidSubject,
    /// The queue name fails [`subject::is_valid_queue`].
    InvalidQueue,
}

impl fmt::Display for SublistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SublistError::InvalidSubject => f.write_str("invalid subject"),
            SublistError::InvalidQueue => f.write_str("invalid queue"),
        }
    }
}

impl std::error::Error for SublistError {}

/// Largest map kept as a plain vector. Most nodes have a handful of
/// children and subscriptions: a short vector is smaller, faster to scan and
/// faster to copy than a hash trie. Past this size a persistent hash trie
/// keeps the copy cost at O(log n).
const SMALL_MAX: usize = 16;

/// A persistent map: a short vector while small, a hash trie when large.
/// Cloning is O(`SMALL_MAX`) or O(1); changing a shared one copies at most
/// O(`SMALL_MAX` + log n).
enum PMap<K, V> {
    Small(Vec<(K, V)>),
    Large(HashTrieMapSync<K, V>),
}

impl<K: Clone, V: Clone> Clone for PMap<K, V>
where
    K: Eq + Hash,
{
    fn clone(&self) -> Self {
        match self {
            PMap::Small(v) => PMap::Small(v.clone()),
            PMap::Large(m) => PMap::Large(m.clone()),
        }
    }
}

impl<K, V> Default for PMap<K, V> {
    fn default() -> Self {
        PMap::Small(Vec::new())
    }
}

impl<K: Eq + Hash + Clone, V: Clone> PMap<K, V> {
    fn len(&self) -> usize {
        match self {
            PMap::Small(v) => v.len(),
            PMap::Large(m) => m.size(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self {
            PMap::Small(v) => v.iter().find(|(k, _)| k.borrow() == key).map(|(_, v)| v),
            PMap::Large(m) => m.get(key),
        }
    }

    fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self {
            PMap::Small(v) => v
                .iter_mut()
                .find(|(k, _)| k.borrow() == key)
                .map(|(_, v)| v),
            PMap::Large(m) => m.get_mut(key),
        }
    }

    /// Insert or replace; true if the key was new.
    fn insert(&mut self, key: K, value: V) -> bool {
        match self {
            PMap::Small(v) => {
                if let Some(slot) = v.iter_mut().find(|(k, _)| *k == key) {
                    slot.1 = value;
                    return false;
                }
                if v.len() < SMALL_MAX {
                    v.push((key, value));
                } else {
                    let mut m = HashTrieMapSync::new_sync();
                    for (k, val) in v.drain(..) {
                        m.insert_mut(k, val);
                    }
                    m.insert_mut(key, value);
                    *self = PMap::Large(m);
                }
                true
            }
            PMap::Large(m) => {
                let new = !m.contains_key(&key);
                m.insert_mut(key, value);
                new
            }
        }
    }

    /// Remove; true if the key was present.
    fn remove<Q>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self {
            PMap::Small(v) => match v.iter().position(|(k, _)| k.borrow() == key) {
                Some(i) => {
                    v.swap_remove(i);
                    true
                }
                None => false,
            },
            PMap::Large(m) => {
                let removed = m.remove_mut(key);
                // Shrink back with hysteresis, so a size near the limit
                // does not flip representation on every change.
                if m.size() <= SMALL_MAX / 2 {
                    let v = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    *self = PMap::Small(v);
                }
                removed
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let (small, large) = match self {
            PMap::Small(v) => (Some(v.iter().map(|(k, v)| (k, v))), None),
            PMap::Large(m) => (None, Some(m.iter())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// Subscriptions by key.
type SubSet<T> = PMap<u64, T>;

/// `for_each` callback: subject, queue, value.
type Visitor<'a, T> = dyn FnMut(&[u8], Option<&[u8]>, &T) + 'a;

/// One trie node: the subscriptions whose subject ends here, and the next
/// level (literal children, the `*` child, the `>` child).
struct Node<T> {
    literal: PMap<Bytes, Arc<Node<T>>>,
    pwc: Option<Arc<Node<T>>>,
    fwc: Option<Arc<Node<T>>>,
    plain: SubSet<T>,
    queues: PMap<Bytes, SubSet<T>>,
}

// Manual impls: a derive would demand `T: Default`/`T: Clone` bounds the
// maps do not need for these operations.
impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literal: PMap::default(),
            pwc: None,
            fwc: None,
            plain: PMap::default(),
            queues: PMap::default(),
        }
    }
}

impl<T: Clone> Clone for Node<T> {
    fn clone(&self) -> Self {
        Node {
            literal: self.literal.clone(),
            pwc: self.pwc.clone(),
            fwc: self.fwc.clone(),
            plain: self.plain.clone(),
            queues: self.queues.clone(),
        }
    }
}

/// Split off the first token: `(token, rest)`, `rest` is `None` after the
/// last token.
fn split_first(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    match s.iter().position(|&b| b == TSEP) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// True if a published subject has no empty token (and is not empty).
fn has_no_empty_token(s: &[u8]) -> bool {
    if s.first().is_none_or(|&b| b == TSEP) || s.last() == Some(&TSEP) {
        return false;
    }
    !s.windows(2).any(|w| w[0] == TSEP && w[1] == TSEP)
}

impl<T: SubValue> Node<T> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.pwc.is_none()
            && self.fwc.is_none()
            && self.plain.is_empty()
            && self.queues.is_empty()
    }

    /// The child for a subscription token, read-only.
    fn child(&self, tok: &[u8]) -> Option<&Arc<Node<T>>> {
        if tok == [PWC] {
            self.pwc.as_ref()
        } else if tok == [FWC] {
            self.fwc.as_ref()
        } else {
            self.literal.get(tok)
        }
    }

    /// The child for a subscription token, created if missing, made unique.
    fn child_mut(&mut self, tok: &[u8]) -> &mut Node<T> {
        let slot = if tok == [PWC] {
            self.pwc.get_or_insert_with(Arc::default)
        } else if tok == [FWC] {
            self.fwc.get_or_insert_with(Arc::default)
        } else {
            if self.literal.get(tok).is_none() {
                self.literal
                    .insert(Bytes::copy_from_slice(tok), Arc::default());
            }
            // Cannot fail: the child was inserted just above if missing.
            self.literal
                .get_mut(tok)
                .expect("child present after insert")
        };
        Arc::make_mut(slot)
    }

    /// Insert at this node; true if the key was new here.
    fn add_sub(&mut self, queue: Option<&[u8]>, value: T) -> bool {
        let key = value.key();
        match queue {
            None => self.plain.insert(key, value),
            Some(q) => {
                if self.queues.get(q).is_none() {
                    self.queues
                        .insert(Bytes::copy_from_slice(q), PMap::default());
                }
                // Cannot fail: the queue was inserted just above if missing.
                self.queues
                    .get_mut(q)
                    .expect("queue present after insert")
                    .insert(key, value)
            }
        }
    }

    fn has_sub(&self, queue: Option<&[u8]>, key: u64) -> bool {
        match queue {
            None => self.plain.get(&key).is_some(),
            Some(q) => self.queues.get(q).is_some_and(|m| m.get(&key).is_some()),
        }
    }

    fn remove_sub(&mut self, queue: Option<&[u8]>, key: u64) -> bool {
        match queue {
            None => self.plain.remove(&key),
            Some(q) => {
                let Some(members) = self.queues.get_mut(q) else {
                    return false;
                };
                let removed = members.remove(&key);
                if members.is_empty() {
                    self.queues.remove(q);
                }
                removed
            }
        }
    }

    /// Does the subscription exist? Read-only, so a remove of an absent key
    /// copies nothing.
    fn contains(&self, subject: &[u8], queue: Option<&[u8]>, key: u64) -> bool {
        let mut node = self;
        for tok in subject::tokens(subject) {
            match node.child(tok) {
                Some(n) => node = n,
                None => return false,
            }
        }
        node.has_sub(queue, key)
    }

    /// Remove below this node, pruning children that become empty. The
    /// caller has checked with `contains` that the subscription exists.
    fn remove_path(&mut self, rest: &[u8], queue: Option<&[u8]>, key: u64) -> bool {
        let (tok, tail) = split_first(rest);
        let (removed, now_empty) = {
            let slot = if tok == [PWC] {
                self.pwc.as_mut()
            } else if tok == [FWC] {
                self.fwc.as_mut()
            } else {
                self.literal.get_mut(tok)
            };
            let Some(slot) = slot else {
                return false;
            };
            let child = Arc::make_mut(slot);
            let removed = match tail {
                Some(t) => child.remove_path(t, queue, key),
                None => child.remove_sub(queue, key),
            };
            (removed, child.is_empty())
        };
        if now_empty {
            if tok == [PWC] {
                self.pwc = None;
            } else if tok == [FWC] {
                self.fwc = None;
            } else {
                self.literal.remove(tok);
            }
        }
        removed
    }

    /// Add this node's subscriptions to a result.
    fn collect(&self, out: &mut MatchResult<T>) {
        out.plain.extend(self.plain.values().cloned());
        for (name, members) in self.queues.iter() {
            // Few groups per result: a linear scan beats hashing, as in
            // nats-server's `findQSlot`.
            match out.queues.iter_mut().find(|g| g.name == *name) {
                Some(g) => g.members.extend(members.values().cloned()),
                None => out.queues.push(QueueGroup {
                    name: name.clone(),
                    members: members.values().cloned().collect(),
                }),
            }
        }
    }

    /// Match the literal subject `rest` against the level below this node.
    fn match_level(&self, rest: &[u8], out: &mut MatchResult<T>) {
        let mut node = self;
        let mut rest = rest;
        loop {
            let (tok, tail) = split_first(rest);
            if let Some(f) = &node.fwc {
                f.collect(out);
            }
            if let Some(p) = &node.pwc {
                match tail {
                    Some(t) => p.match_level(t, out),
                    None => p.collect(out),
                }
            }
            let Some(next) = node.literal.get(tok) else {
                return;
            };
            match tail {
                Some(t) => {
                    node = next;
                    rest = t;
                }
                None => {
                    next.collect(out);
                    return;
                }
            }
        }
    }

    fn for_each(&self, path: &mut Vec<u8>, f: &mut Visitor<'_, T>) {
        for v in self.plain.values() {
            f(path, None, v);
        }
        for (q, members) in self.queues.iter() {
            for v in members.values() {
                f(path, Some(q), v);
            }
        }
        let mut visit = |tok: &[u8], child: &Node<T>| {
            let len = path.len();
            if len > 0 {
                path.push(TSEP);
            }
            path.extend_from_slice(tok);
            child.for_each(path, f);
            path.truncate(len);
        };
        for (tok, child) in self.literal.iter() {
            visit(tok, child);
        }
        if let Some(p) = &self.pwc {
            visit(&[PWC], p);
        }
        if let Some(fw) = &self.fwc {
            visit(&[FWC], fw);
        }
    }
}

/// The members of one queue group, across all subjects that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueGroup<T> {
    /// The queue name: the group's identity.
    pub name: Bytes,
    /// Every matching subscription in this group; the caller picks one.
    pub members: Vec<T>,
}

/// Everything a published subject reaches. Order is unspecified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchResult<T> {
    /// Plain subscriptions: each gets a copy.
    pub plain: Vec<T>,
    /// Queue groups: one member of each gets a copy.
    pub queues: Vec<QueueGroup<T>>,
}

impl<T> Default for MatchResult<T> {
    fn default() -> Self {
        MatchResult {
            plain: Vec::new(),
            queues: Vec::new(),
        }
    }
}

impl<T> MatchResult<T> {
    /// True if nothing matched.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty()
    }
}

/// An immutable view of the sublist at one generation. Cheap to hold
/// (one `Arc`); later changes never show through it.
pub struct Snapshot<T> {
    root: Arc<Node<T>>,
    count: usize,
    generation: u64,
}

impl<T: SubValue> Snapshot<T> {
    /// The generation this snapshot was published at.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of subscriptions.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Everything the literal (published) subject reaches: `*` in a
    /// subscription matches one token, `>` one or more trailing tokens.
    pub fn matches(&self, subject: &[u8]) -> MatchResult<T> {
        let mut out = MatchResult::default();
        if has_no_empty_token(subject) {
            self.root.match_level(subject, &mut out);
        }
        out
    }

    /// Visit every subscription: subject, queue, value. Order is
    /// unspecified.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], Option<&[u8]>, &T)) {
        let mut path = Vec::with_capacity(64);
        self.root.for_each(&mut path, &mut f);
    }
}

/// Counters for monitoring (`/subsz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SublistStats {
    /// Current number of subscriptions.
    pub num_subscriptions: usize,
    /// Successful inserts since creation.
    pub num_inserts: u64,
    /// Successful removes since creation.
    pub num_removes: u64,
    /// Matches done through [`Sublist::matches`] or a [`MatchCache`]
    /// (caches report in batches, so this lags by a few hundred per cache).
    pub num_matches: u64,
    /// Current generation.
    pub generation: u64,
}

/// The subscription trie: lock-free reads from snapshots, serialised
/// path-copying writes. See the module docs.
pub struct Sublist<T: SubValue> {
    current: ArcSwap<Snapshot<T>>,
    /// Published after `current`, so a reader that sees generation `g` here
    /// will load a snapshot at least that new.
    generation: AtomicU64,
    write: Mutex<()>,
    num_inserts: AtomicU64,
    num_removes: AtomicU64,
    num_matches: AtomicU64,
}

impl<T: SubValue> Default for Sublist<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: SubValue> Sublist<T> {
    /// An empty sublist at generation 0.
    pub fn new() -> Self {
        Sublist {
            current: ArcSwap::from_pointee(Snapshot {
                root: Arc::default(),
                count: 0,
                generation: 0,
            }),
            generation: AtomicU64::new(0),
            write: Mutex::new(()),
            num_inserts: AtomicU64::new(0),
            num_removes: AtomicU64::new(0),
            num_matches: AtomicU64::new(0),
        }
    }

    /// Run one write under the writer lock. `f` edits a private copy of the
    /// root and the count and returns how many changes it made; a new
    /// snapshot is published only if that is non-zero.
    fn write<F>(&self, f: F) -> usize
    where
        F: FnOnce(&mut Arc<Node<T>>, &mut usize) -> usize,
    {
        // The mutex guards no data of its own: a snapshot is only ever
        // replaced whole, so a writer that panicked left nothing half-done
        // and the poison can be ignored.
        let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let cur = self.current.load_full();
        let mut root = Arc::clone(&cur.root);
        let mut count = cur.count;
        let changes = f(&mut root, &mut count);
        if changes > 0 {
            let generation = cur.generation + 1;
            self.current.store(Arc::new(Snapshot {
                root,
                count,
                generation,
            }));
            self.generation.store(generation, Ordering::Release);
        }
        changes
    }

    /// Insert a subscription. A value whose key is already on this
    /// subject/queue replaces it (the count does not change).
    pub fn insert(
        &self,
        subject: &[u8],
        queue: Option<&[u8]>,
        value: T,
    ) -> Result<(), SublistError> {
        if !subject::is_valid_subject(subject) {
            return Err(SublistError::InvalidSubject);
        }
        if queue.is_some_and(|q| !subject::is_valid_queue(q)) {
            return Err(SublistError::InvalidQueue);
        }
        self.write(|root, count| {
            let mut node = Arc::make_mut(root);
            for tok in subject::tokens(subject) {
                node = node.child_mut(tok);
            }
            if node.add_sub(queue, value) {
                *count += 1;
            }
            1
        });
        self.num_inserts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Remove the value with this key from that subject/queue; false if
    /// absent.
    pub fn remove(&self, subject: &[u8], queue: Option<&[u8]>, key: u64) -> bool {
        let n = self.write(|root, count| remove_one(root, count, subject, queue, key));
        self.num_removes.fetch_add(n as u64, Ordering::Relaxed);
        n > 0
    }

    /// Remove many subscriptions under one lock and publish one snapshot
    /// (a closing client drops all its subscriptions at once). Returns how
    /// many were found and removed.
    pub fn remove_batch(&self, items: &[(Bytes, Option<Bytes>, u64)]) -> usize {
        let n = self.write(|root, count| {
            items
                .iter()
                .map(|(s, q, key)| remove_one(root, count, s, q.as_deref(), *key))
                .sum()
        });
        self.num_removes.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot<T>> {
        self.current.load_full()
    }

    /// Match against the current snapshot, counted in
    /// [`SublistStats::num_matches`]. Publish paths use a [`MatchCache`].
    pub fn matches(&self, subject: &[u8]) -> MatchResult<T> {
        self.num_matches.fetch_add(1, Ordering::Relaxed);
        self.current.load().matches(subject)
    }

    /// Number of subscriptions.
    pub fn count(&self) -> usize {
        self.current.load().count
    }

    /// Bumps on every change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Counters for monitoring.
    pub fn stats(&self) -> SublistStats {
        let snap = self.current.load();
        SublistStats {
            num_subscriptions: snap.count,
            num_inserts: self.num_inserts.load(Ordering::Relaxed),
            num_removes: self.num_removes.load(Ordering::Relaxed),
            num_matches: self.num_matches.load(Ordering::Relaxed),
            generation: snap.generation,
        }
    }
}

/// One removal on the writer's private root. Returns 1 if removed.
fn remove_one<T: SubValue>(
    root: &mut Arc<Node<T>>,
    count: &mut usize,
    subject: &[u8],
    queue: Option<&[u8]>,
    key: u64,
) -> usize {
    // Check first so that an absent key copies no node.
    if subject.is_empty() || !root.contains(subject, queue, key) {
        return 0;
    }
    let removed = Arc::make_mut(root).remove_path(subject, queue, key);
    assert!(
        removed,
        "a subscription found by contains() must be removable"
    );
    *count -= 1;
    1
}

/// The Firefox/rustc "Fx" hash: a multiply-rotate per word. The match
/// cache is keyed by subjects the reactor's own clients publish to, so it
/// needs speed, not DoS resistance against a remote choosing keys: an
/// attacker can only slow its own reactor's cache, which is bounded.
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut tail = [0u8; 8];
            tail[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(tail));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply mixes each word only upwards: keys that differ in
        // the high bytes of their last word (`_INBOX.x.1`, `_INBOX.x.2`, ...)
        // would share their low bits, which pick the hash table bucket.
        // The rotation brings the well-mixed high bits down.
        self.hash.rotate_left(26)
    }
}

/// How many matches a [`MatchCache`] counts before adding them to the
/// sublist's shared counter (one atomic add per batch, not per publish).
const MATCH_REPORT_BATCH: u64 = 1024;

/// Slots of a [`MatchCache`]'s admission filter.
const SEEN_SLOTS: usize = 4096;

/// A per-reactor cache of match results for one sublist. Entries are valid
/// for one sublist generation; the first `get` after a change drops them
/// all. When full, a subject is admitted only on its second miss (a
/// fingerprint per hash slot remembers the first), and its admission drops
/// half the entries (amortised O(1) per insert): a stream of subjects used
/// once each (reply inboxes, JetStream ack subjects) then passes through
/// without evicting what is used again.
pub struct MatchCache<T: SubValue> {
    capacity: usize,
    entries: HashMap<Bytes, Arc<MatchResult<T>>, BuildHasherDefault<FxHasher>>,
    seen: Box<[u32]>,
    snapshot: Option<Arc<Snapshot<T>>>,
    empty: Arc<MatchResult<T>>,
    hits: u64,
    misses: u64,
    unreported: u64,
}

impl<T: SubValue> MatchCache<T> {
    /// A cache holding at most `capacity` subjects (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        MatchCache {
            capacity,
            entries: HashMap::with_capacity_and_hasher(capacity.min(4096), Default::default()),
            seen: vec![0; SEEN_SLOTS].into_boxed_slice(),
            snapshot: None,
            empty: Arc::new(MatchResult::default()),
            hits: 0,
            misses: 0,
            unreported: 0,
        }
    }

    /// The match result for `subject` at the sublist's current generation.
    pub fn get(&mut self, sublist: &Sublist<T>, subject: &[u8]) -> Arc<MatchResult<T>> {
        self.unreported += 1;
        if self.unreported >= MATCH_REPORT_BATCH {
            sublist
                .num_matches
                .fetch_add(self.unreported, Ordering::Relaxed);
            self.unreported = 0;
        }
        let generation = sublist.generation();
        if self
            .snapshot
            .as_ref()
            .is_none_or(|s| s.generation != generation)
        {
            self.entries.clear();
            self.snapshot = Some(sublist.snapshot());
        }
        if let Some(r) = self.entries.get(subject) {
            self.hits += 1;
            return Arc::clone(r);
        }
        self.misses += 1;
        let result = match &self.snapshot {
            Some(snap) => snap.matches(subject),
            None => MatchResult::default(),
        };
        let result = if result.is_empty() {
            Arc::clone(&self.empty)
        } else {
            Arc::new(result)
        };
        if self.entries.len() >= self.capacity {
            // The table hash is tuned for speed; mix it fully (murmur3's
            // finaliser) so that similar subjects get distinct fingerprints.
            let mut h = self.entries.hasher().hash_one(subject);
            h ^= h >> 33;
            h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 33;
            h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            h ^= h >> 33;
            let slot = (h as usize) % SEEN_SLOTS;
            // Never 0, so an empty slot matches nothing.
            let print = ((h >> 32) as u32) | 1;
            if self.seen[slot] != print {
                self.seen[slot] = print;
                return result;
            }
            let mut keep = false;
            self.entries.retain(|_, _| {
                keep = !keep;
                keep
            });
        }
        self.entries
            .insert(Bytes::copy_from_slice(subject), Arc::clone(&result));
        result
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Lookups that walked the trie.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Subjects cached now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Sub(u64);

    impl SubValue for Sub {
        fn key(&self) -> u64 {
            self.0
        }
    }

    type Groups = BTreeMap<Vec<u8>, BTreeSet<u64>>;

    #[test]
    fn cache_hash_spreads_subjects_that_differ_at_the_end() {
        let build = BuildHasherDefault::<FxHasher>::default();
        // Same length, differing only in the last bytes: inbox replies.
        let buckets: BTreeSet<u64> = (0..4096)
            .map(|i| build.hash_one(Bytes::from(format!("_INBOX.abcdefgh.{i:06}"))) & 4095)
            .collect();
        assert!(
            buckets.len() > 2000,
            "only {} of 4096 buckets used",
            buckets.len()
        );
    }

    fn plain_keys(r: &MatchResult<Sub>) -> BTreeSet<u64> {
        let keys: BTreeSet<u64> = r.plain.iter().map(|s| s.0).collect();
        assert_eq!(keys.len(), r.plain.len(), "duplicate plain result");
        keys
    }

    fn groups(r: &MatchResult<Sub>) -> Groups {
        let mut out = Groups::new();
        for g in &r.queues {
            assert!(!g.members.is_empty(), "empty group in result");
            let keys: BTreeSet<u64> = g.members.iter().map(|s| s.0).collect();
            assert_eq!(keys.len(), g.members.len(), "duplicate queue member");
            let prev = out.insert(g.name.to_vec(), keys);
            assert!(prev.is_none(), "queue group split in two");
        }
        out
    }

    fn keys(list: &[u64]) -> BTreeSet<u64> {
        list.iter().copied().collect()
    }

    fn sl_with(subs: &[(&str, u64)]) -> Sublist<Sub> {
        let sl = Sublist::new();
        for (s, k) in subs {
            sl.insert(s.as_bytes(), None, Sub(*k))
                .expect("valid subject");
        }
        sl
    }

    fn matched(sl: &Sublist<Sub>, subject: &str) -> BTreeSet<u64> {
        plain_keys(&sl.snapshot().matches(subject.as_bytes()))
    }

    /// As nats-server `TestSublistInit` / `TestSublistInsertCount`.
    #[test]
    fn new_is_empty_and_insert_counts() {
        let sl: Sublist<Sub> = Sublist::default();
        assert_eq!(sl.count(), 0);
        assert_eq!(sl.generation(), 0);
        let sl = sl_with(&[("foo", 1), ("bar", 2), ("foo.bar", 3)]);
        assert_eq!(sl.count(), 3);
        assert_eq!(sl.snapshot().count(), 3);
    }

    /// As nats-server `TestSublistSimple`, `TestSublistSimpleMultiTokens`,
    /// `TestSublistTwoTokenPubMatchSingleTokenSub`.
    #[test]
    fn literal_matches_exact_subject_only() {
        let sl = sl_with(&[("foo", 1), ("foo.bar.baz", 2)]);
        assert_eq!(matched(&sl, "foo"), keys(&[1]));
        assert_eq!(matched(&sl, "foo.bar.baz"), keys(&[2]));
        assert_eq!(matched(&sl, "foo.bar"), keys(&[]));
        assert_eq!(matched(&sl, "foo.bar.baz.qux"), keys(&[]));
        assert_eq!(matched(&sl, "bar"), keys(&[]));
    }

    /// As nats-server `TestSublistPartialWildcard` and `...AtEnd`.
    #[test]
    fn partial_wildcard_matches_one_token() {
        let sl = sl_with(&[
            ("a.b.c", 1),
            ("a.*.c", 2),
            ("*.b.c", 3),
            ("a.b.*", 4),
            ("*", 5),
        ]);
        assert_eq!(matched(&sl, "a.b.c"), keys(&[1, 2, 3, 4]));
        assert_eq!(matched(&sl, "a.x.c"), keys(&[2]));
        assert_eq!(matched(&sl, "a.b"), keys(&[]));
        assert_eq!(matched(&sl, "a"), keys(&[5]));
        assert_eq!(matched(&sl, "a.b.c.d"), keys(&[]));
    }

    /// As nats-server `TestSublistFullWildcard`.
    #[test]
    fn full_wildcard_matches_one_or_more_trailing_tokens() {
        let sl = sl_with(&[("a.b.c", 1), ("a.>", 2), (">", 3), ("a.*.>", 4)]);
        assert_eq!(matched(&sl, "a.b.c"), keys(&[1, 2, 3, 4]));
        assert_eq!(
            matched(&sl, "a.b"),
            keys(&[2, 3]),
            "a.*.> needs a third token"
        );
        assert_eq!(matched(&sl, "a"), keys(&[3]));
        assert_eq!(matched(&sl, "z.y.x.w"), keys(&[3]));
    }

    #[test]
    fn mixed_wildcards() {
        let sl = sl_with(&[("*.*", 1), ("*.>", 2), ("foo.*.>", 3), ("*.bar.baz", 4)]);
        assert_eq!(matched(&sl, "foo.bar"), keys(&[1, 2]));
        assert_eq!(matched(&sl, "foo.bar.baz"), keys(&[2, 3, 4]));
        assert_eq!(matched(&sl, "x.bar.baz"), keys(&[2, 4]));
        assert_eq!(matched(&sl, "foo"), keys(&[]));
    }

    /// FEATURES.md (2.9.10): a `*`/`>` in a published subject is a literal
    /// token; wildcard subscriptions match it, literal ones don't. Also
    /// nats-server `TestSublistInsertWithWildcardsAsLiterals`.
    #[test]
    fn published_wildcards_are_literal_tokens() {
        let sl = sl_with(&[
            ("foo.bar", 1),
            ("foo.*", 2),
            ("foo.>", 3),
            ("foo.*-", 4),
            ("fo*o", 5),
        ]);
        assert_eq!(matched(&sl, "foo.*"), keys(&[2, 3]));
        assert_eq!(matched(&sl, "foo.>"), keys(&[2, 3]));
        assert_eq!(matched(&sl, "foo.*-"), keys(&[2, 3, 4]));
        assert_eq!(matched(&sl, "fo*o"), keys(&[5]));
        assert_eq!(matched(&sl, "foo.bar"), keys(&[1, 2, 3]));
    }

    /// As nats-server `TestSublistMatchWithEmptyTokens`.
    #[test]
    fn subject_with_empty_token_matches_nothing() {
        let sl = Sublist::new();
        sl.insert(b">", None, Sub(1)).expect("valid");
        sl.insert(b">", Some(b"queue"), Sub(2)).expect("valid");
        for s in [
            ".foo",
            "..foo",
            "foo..",
            "foo.",
            "foo..bar",
            "foo...bar",
            "",
            ".",
        ] {
            assert!(sl.snapshot().matches(s.as_bytes()).is_empty(), "{s:?}");
        }
    }

    /// As nats-server `TestSublistInvalidSubjectsInsert`.
    #[test]
    fn invalid_subject_or_queue_is_refused() {
        let sl: Sublist<Sub> = Sublist::new();
        for s in [
            ".foo",
            "foo.",
            "foo..bar",
            "foo.>.bar",
            ">.bar",
            "",
            "foo bar",
        ] {
            assert_eq!(
                sl.insert(s.as_bytes(), None, Sub(1)),
                Err(SublistError::InvalidSubject),
                "{s:?}"
            );
        }
        assert_eq!(
            sl.insert(b"foo", Some(b""), Sub(1)),
            Err(SublistError::InvalidQueue)
        );
        assert_eq!(
            sl.insert(b"foo", Some(b"a b"), Sub(1)),
            Err(SublistError::InvalidQueue)
        );
        assert_eq!(sl.count(), 0);
        assert_eq!(sl.generation(), 0);
        assert_eq!(SublistError::InvalidSubject.to_string(), "invalid subject");
    }

    /// As nats-server `TestSublistRemove`, `TestSublistRemoveWildcard`,
    /// `TestSublistRemoveWithWildcardsAsLiterals`.
    #[test]
    fn remove_by_key_subject_and_queue() {
        let sl = sl_with(&[("a.b", 1), ("a.*", 2), ("a.>", 3), ("foo.*-", 4)]);
        assert!(!sl.remove(b"a.b", None, 2), "wrong key");
        assert!(!sl.remove(b"a.c", None, 1), "wrong subject");
        assert!(!sl.remove(b"a.b", Some(b"q"), 1), "wrong queue");
        assert!(!sl.remove(b"foo.bar", None, 4), "wildcard-looking literal");
        assert!(!sl.remove(b"", None, 1));
        assert_eq!(sl.count(), 4);
        assert!(sl.remove(b"a.*", None, 2));
        assert_eq!(matched(&sl, "a.b"), keys(&[1, 3]));
        assert!(sl.remove(b"a.b", None, 1));
        assert!(sl.remove(b"a.>", None, 3));
        assert!(sl.remove(b"foo.*-", None, 4));
        assert!(!sl.remove(b"a.b", None, 1), "already removed");
        assert_eq!(sl.count(), 0);
        assert_eq!(matched(&sl, "a.b"), keys(&[]));
        assert_eq!(sl.stats().num_removes, 4);
    }

    /// As nats-server `TestSublistRemoveCleanup` and
    /// `...CleanupWildcards`: removing the last subscription prunes the path.
    #[test]
    fn remove_prunes_empty_nodes() {
        let sl = sl_with(&[("a.b.c.d.e", 1), ("a.*.c.>", 2), ("x", 3)]);
        sl.insert(b"a.b.q", Some(b"g"), Sub(4)).expect("valid");
        assert!(sl.remove(b"a.b.c.d.e", None, 1));
        assert!(sl.remove(b"a.*.c.>", None, 2));
        assert!(sl.remove(b"x", None, 3));
        assert!(sl.remove(b"a.b.q", Some(b"g"), 4));
        assert!(sl.snapshot().root.is_empty());
    }

    /// As nats-server `TestSublistBasicQueueResults`.
    #[test]
    fn queue_groups_are_grouped_by_name() {
        let sl = Sublist::new();
        sl.insert(b"foo", None, Sub(1)).expect("valid");
        sl.insert(b"foo", Some(b"bar"), Sub(2)).expect("valid");
        sl.insert(b"foo", Some(b"bar"), Sub(3)).expect("valid");
        sl.insert(b"foo", Some(b"baz"), Sub(4)).expect("valid");
        let r = sl.snapshot().matches(b"foo");
        assert_eq!(plain_keys(&r), keys(&[1]));
        let g = groups(&r);
        assert_eq!(g.len(), 2);
        assert_eq!(g[&b"bar"[..]], keys(&[2, 3]));
        assert_eq!(g[&b"baz"[..]], keys(&[4]));
        assert!(sl.remove(b"foo", Some(b"bar"), 2));
        assert!(sl.remove(b"foo", Some(b"baz"), 4));
        let g = groups(&sl.snapshot().matches(b"foo"));
        assert_eq!(g.len(), 1);
        assert_eq!(g[&b"bar"[..]], keys(&[3]));
    }

    /// One group per queue name across subjects, as nats-server
    /// `addNodeToResults` merges by name.
    #[test]
    fn queue_group_on_wildcard_and_literal_is_one_group() {
        let sl = Sublist::new();
        sl.insert(b"foo.*", Some(b"workers"), Sub(1))
            .expect("valid");
        sl.insert(b"foo.bar", Some(b"workers"), Sub(2))
            .expect("valid");
        sl.insert(b"foo.>", Some(b"workers"), Sub(3))
            .expect("valid");
        sl.insert(b"foo.bar", Some(b"other"), Sub(4))
            .expect("valid");
        let r = sl.snapshot().matches(b"foo.bar");
        assert!(r.plain.is_empty());
        let g = groups(&r);
        assert_eq!(g.len(), 2);
        assert_eq!(g[&b"workers"[..]], keys(&[1, 2, 3]));
        assert_eq!(g[&b"other"[..]], keys(&[4]));
    }

    #[test]
    fn same_key_twice_replaces() {
        let sl = sl_with(&[("foo", 1), ("foo", 1)]);
        assert_eq!(sl.count(), 1);
        assert_eq!(matched(&sl, "foo"), keys(&[1]));
        // The same key on another subject is another entry.
        sl.insert(b"bar", None, Sub(1)).expect("valid");
        assert_eq!(sl.count(), 2);
    }

    #[test]
    fn generation_bumps_on_every_change_only() {
        let sl = Sublist::new();
        sl.insert(b"foo", None, Sub(1)).expect("valid");
        assert_eq!(sl.generation(), 1);
        sl.insert(b"foo.*", Some(b"q"), Sub(2)).expect("valid");
        assert_eq!(sl.generation(), 2);
        assert!(!sl.remove(b"foo", None, 99));
        assert_eq!(sl.generation(), 2, "no change, no bump");
        let _ = sl.insert(b"foo..", None, Sub(3));
        assert_eq!(sl.generation(), 2, "refused insert, no bump");
        assert!(sl.remove(b"foo", None, 1));
        assert_eq!(sl.generation(), 3);
        assert_eq!(sl.snapshot().generation(), 3);
        assert_eq!(sl.stats().generation, 3);
    }

    #[test]
    fn old_snapshot_is_unaffected_by_later_changes() {
        let sl = sl_with(&[("foo.bar", 1), ("foo.*", 2)]);
        let old = sl.snapshot();
        sl.insert(b"foo.bar", None, Sub(3)).expect("valid");
        sl.insert(b"foo.>", Some(b"q"), Sub(4)).expect("valid");
        assert!(sl.remove(b"foo.*", None, 2));
        assert_eq!(plain_keys(&old.matches(b"foo.bar")), keys(&[1, 2]));
        assert!(old.matches(b"foo.bar").queues.is_empty());
        assert_eq!(old.count(), 2);
        assert_eq!(old.generation(), 2);
        let new = sl.snapshot();
        assert_eq!(plain_keys(&new.matches(b"foo.bar")), keys(&[1, 3]));
        assert_eq!(groups(&new.matches(b"foo.bar")).len(), 1);
    }

    /// As nats-server `TestSublistNoCacheRemoveBatch`: one snapshot for
    /// the whole batch.
    #[test]
    fn remove_batch_publishes_one_generation() {
        let sl = Sublist::new();
        for i in 0..100u64 {
            sl.insert(format!("foo.{i}").as_bytes(), None, Sub(i))
                .expect("valid");
        }
        sl.insert(b"foo.*", Some(b"q"), Sub(1000)).expect("valid");
        let before = sl.generation();
        let mut batch: Vec<(Bytes, Option<Bytes>, u64)> = (0..100u64)
            .map(|i| (Bytes::from(format!("foo.{i}")), None, i))
            .collect();
        batch.push((
            Bytes::from_static(b"foo.*"),
            Some(Bytes::from_static(b"q")),
            1000,
        ));
        batch.push((Bytes::from_static(b"foo.1"), None, 1));
        batch.push((Bytes::from_static(b"nope"), None, 5));
        assert_eq!(sl.remove_batch(&batch), 101);
        assert_eq!(sl.generation(), before + 1);
        assert_eq!(sl.count(), 0);
        assert!(sl.snapshot().root.is_empty());
        assert_eq!(sl.remove_batch(&batch), 0);
        assert_eq!(sl.generation(), before + 1);
    }

    #[test]
    fn for_each_visits_every_subscription() {
        let sl = Sublist::new();
        let subs: Vec<(&str, Option<&str>, u64)> = vec![
            ("foo", None, 1),
            ("foo.bar", None, 2),
            ("foo.*", Some("q"), 3),
            ("foo.>", None, 4),
            ("*", None, 5),
            (">", Some("r"), 6),
            ("a.b.c", Some("q"), 7),
        ];
        for (s, q, k) in &subs {
            sl.insert(s.as_bytes(), q.map(str::as_bytes), Sub(*k))
                .expect("valid");
        }
        let mut seen = BTreeSet::new();
        sl.snapshot().for_each(|s, q, v| {
            seen.insert((s.to_vec(), q.map(<[u8]>::to_vec), v.0));
        });
        let want: BTreeSet<_> = subs
            .iter()
            .map(|(s, q, k)| (s.as_bytes().to_vec(), q.map(|q| q.as_bytes().to_vec()), *k))
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn stats_count_inserts_removes_matches() {
        let sl = sl_with(&[("a", 1), ("b", 2)]);
        assert!(sl.remove(b"a", None, 1));
        let _ = sl.matches(b"b");
        let st = sl.stats();
        assert_eq!(st.num_subscriptions, 1);
        assert_eq!(st.num_inserts, 2);
        assert_eq!(st.num_removes, 1);
        assert_eq!(st.num_matches, 1);
    }

    /// As nats-server `TestSublistCache`: results change after an insert.
    #[test]
    fn match_cache_returns_fresh_results_after_insert() {
        let sl = sl_with(&[("foo.bar", 1)]);
        let mut cache = MatchCache::new(16);
        assert_eq!(plain_keys(&cache.get(&sl, b"foo.bar")), keys(&[1]));
        assert_eq!(plain_keys(&cache.get(&sl, b"foo.bar")), keys(&[1]));
        assert_eq!((cache.hits(), cache.misses()), (1, 1));
        sl.insert(b"foo.*", None, Sub(2)).expect("valid");
        assert_eq!(plain_keys(&cache.get(&sl, b"foo.bar")), keys(&[1, 2]));
        assert_eq!(cache.misses(), 2);
        assert!(sl.remove(b"foo.bar", None, 1));
        assert_eq!(plain_keys(&cache.get(&sl, b"foo.bar")), keys(&[2]));
        assert!(cache.get(&sl, b"nothing").is_empty());
        assert!(cache.get(&sl, b"foo..bar").is_empty());
    }

    #[test]
    fn match_cache_stays_bounded() {
        let sl = sl_with(&[(">", 1)]);
        let mut cache = MatchCache::new(64);
        for i in 0..10_000 {
            let r = cache.get(&sl, format!("s.{i}").as_bytes());
            assert_eq!(plain_keys(&r), keys(&[1]));
            assert!(cache.len() <= 64);
        }
        assert!(!cache.is_empty());
        assert!(
            sl.stats().num_matches >= 9 * 1024,
            "caches report in batches"
        );
    }

    #[test]
    fn full_match_cache_keeps_its_entries_through_subjects_used_once() {
        let sl = sl_with(&[(">", 1)]);
        let mut cache = MatchCache::new(64);
        for i in 0..64 {
            cache.get(&sl, format!("hot.{i}").as_bytes());
        }
        assert_eq!(cache.len(), 64);
        for i in 0..10_000 {
            cache.get(&sl, format!("$JS.ACK.s.c.1.{i}.{i}.0.0").as_bytes());
        }
        let misses = cache.misses();
        for i in 0..64 {
            cache.get(&sl, format!("hot.{i}").as_bytes());
        }
        assert_eq!(cache.misses(), misses, "the hot subjects stayed cached");
        // A subject that comes back is admitted on its second miss.
        cache.get(&sl, b"warm");
        cache.get(&sl, b"warm");
        let hits = cache.hits();
        cache.get(&sl, b"warm");
        assert_eq!(cache.hits(), hits + 1);
        assert!(cache.len() <= 64);
    }

    /// Catches O(n) per-insert copying: 100,000 children under one node
    /// must take about as long as 100,000 independent inserts.
    #[test]
    fn many_subscriptions_under_one_parent() {
        let sl = Sublist::new();
        let n = 100_000u64;
        for i in 0..n {
            sl.insert(format!("foo.{i}").as_bytes(), None, Sub(i))
                .expect("valid");
        }
        for i in 0..1000u64 {
            sl.insert(b"bar", Some(b"q"), Sub(n + i)).expect("valid");
        }
        assert_eq!(sl.count(), (n + 1000) as usize);
        assert_eq!(matched(&sl, "foo.77777"), keys(&[77777]));
        assert_eq!(
            plain_keys(&sl.snapshot().matches(b"foo.*".as_ref())).len(),
            0
        );
        assert_eq!(
            groups(&sl.snapshot().matches(b"bar"))[&b"q"[..]].len(),
            1000
        );
        for i in (0..n).step_by(2) {
            assert!(sl.remove(format!("foo.{i}").as_bytes(), None, i));
        }
        assert_eq!(sl.count(), (n / 2 + 1000) as usize);
    }

    /// Nodes switch between the vector and the hash trie at `SMALL_MAX`;
    /// every size on the way up and down must answer the same.
    #[test]
    fn small_and_large_maps_agree_across_the_boundary() {
        let sl = Sublist::new();
        let n = (SMALL_MAX * 3) as u64;
        for i in 0..n {
            sl.insert(b"foo", None, Sub(i)).expect("valid");
            sl.insert(format!("bar.{i}").as_bytes(), Some(b"q"), Sub(n + i))
                .expect("valid");
            assert_eq!(matched(&sl, "foo").len() as u64, i + 1);
        }
        for i in 0..n {
            assert!(sl.remove(b"foo", None, i));
            assert!(sl.remove(format!("bar.{i}").as_bytes(), Some(b"q"), n + i));
            let want: BTreeSet<u64> = (i + 1..n).collect();
            assert_eq!(matched(&sl, "foo"), want);
            for j in 0..n {
                let r = sl.snapshot().matches(format!("bar.{j}").as_bytes());
                assert_eq!(r.is_empty(), j <= i, "bar.{j} after removing {i}");
            }
        }
        assert!(sl.snapshot().root.is_empty());
    }

    // ---- property test against the naive matcher ----

    fn token() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "c", "*", ">"])
    }

    /// A subscription subject from a small alphabet; `>` anywhere but last
    /// is dropped so every generated filter is valid.
    fn filter() -> impl Strategy<Value = String> {
        prop::collection::vec(token(), 1..5).prop_map(|toks| {
            let last = toks.len() - 1;
            let kept: Vec<&str> = toks
                .iter()
                .enumerate()
                .filter(|(i, t)| *i == last || **t != ">")
                .map(|(_, t)| *t)
                .collect();
            kept.join(".")
        })
    }

    fn published() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c", "*", ">", ""]),
            1..6,
        )
        .prop_map(|t| t.join("."))
    }

    fn queue() -> impl Strategy<Value = Option<&'static str>> {
        prop::sample::select(vec![None, None, Some("q1"), Some("q2")])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn matches_equal_naive_linear_matcher(
            subs in prop::collection::vec((filter(), queue()), 0..60),
            removals in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
            subjects in prop::collection::vec(published(), 1..30),
        ) {
            let sl = Sublist::new();
            let mut model: Vec<(String, Option<&str>, u64)> = Vec::new();
            for (i, (f, q)) in subs.iter().enumerate() {
                let key = i as u64;
                sl.insert(f.as_bytes(), q.map(str::as_bytes), Sub(key)).expect("valid filter");
                model.push((f.clone(), *q, key));
            }
            let mut batch = Vec::new();
            for (n, ix) in removals.iter().enumerate() {
                if model.is_empty() {
                    break;
                }
                let (f, q, key) = model.swap_remove(ix.index(model.len()));
                if n % 2 == 0 {
                    prop_assert!(sl.remove(f.as_bytes(), q.map(str::as_bytes), key));
                } else {
                    batch.push((Bytes::from(f), q.map(|q| Bytes::from_static(q.as_bytes())), key));
                }
            }
            prop_assert_eq!(sl.remove_batch(&batch), batch.len());
            prop_assert_eq!(sl.count(), model.len());
            let snap = sl.snapshot();
            let mut cache = MatchCache::new(8);
            for s in &subjects {
                let r = snap.matches(s.as_bytes());
                let mut want_plain = BTreeSet::new();
                let mut want_groups = Groups::new();
                for (f, q, key) in &model {
                    if subject::subject_matches(f.as_bytes(), s.as_bytes()) {
                        match q {
                            None => { want_plain.insert(*key); }
                            Some(q) => { want_groups.entry(q.as_bytes().to_vec()).or_default().insert(*key); }
                        }
                    }
                }
                prop_assert_eq!(plain_keys(&r), want_plain, "subject {:?}", s);
                prop_assert_eq!(groups(&r), want_groups, "subject {:?}", s);
                prop_assert_eq!(&*cache.get(&sl, s.as_bytes()), &r);
            }
        }
    }
}
