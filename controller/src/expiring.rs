//! Memos kept per object for a while: a token read from a Secret, a status just written, when a
//! cluster's last pass ended, a warning already given. Each entry counts only until it is older
//! than the map's time to live, and expired entries are dropped as the map is used, so the
//! objects deleted meanwhile leave nothing behind in a long-running controller.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct ExpiringMap<K, V> {
    ttl: Duration,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    entries: HashMap<K, (Instant, V)>,
    /// When expired entries were last dropped: at most once per time to live, so an insert
    /// costs a sweep of the map only now and then.
    swept: Instant,
}

impl<K: Eq + Hash, V: Clone> ExpiringMap<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// A panic while the lock was held leaves nothing half-written here (each operation is
    /// a single map call), so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value stored for `key` and how long ago, unless that is the time to live or more.
    pub fn get<Q>(&self, key: &Q, now: Instant) -> Option<(V, Duration)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = self.lock();
        let (at, value) = inner.entries.get(key)?;
        let age = now.saturating_duration_since(*at);
        (age < self.ttl).then(|| (value.clone(), age))
    }

    pub fn insert(&self, key: K, value: V, now: Instant) {
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        inner.entries.insert(key, (now, value));
    }

    /// Inserts unless `key` holds an entry younger than the time to live; true if inserted.
    pub fn insert_new(&self, key: K, value: V, now: Instant) -> bool {
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        if let Some((at, _)) = inner.entries.get(&key)
            && now.saturating_duration_since(*at) < self.ttl
        {
            return false;
        }
        inner.entries.insert(key, (now, value));
        true
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().entries.remove(key);
    }

    fn sweep(&self, inner: &mut Inner<K, V>, now: Instant) {
        if now.saturating_duration_since(inner.swept) < self.ttl {
            return;
        }
        let ttl = self.ttl;
        inner
            .entries
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
        inner.swept = now;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_counts_until_it_is_as_old_as_the_time_to_live() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let map = ExpiringMap::new(Duration::from_millis(100));
        map.insert("a", 1, at(0));
        assert_eq!(map.get(&"a", at(40)), Some((1, Duration::from_millis(40))));
        assert_eq!(map.get(&"a", at(100)), None);
        assert_eq!(map.get(&"b", at(0)), None);
        map.insert("a", 2, at(150));
        assert_eq!(map.get(&"a", at(160)), Some((2, Duration::from_millis(10))));
        map.remove(&"a");
        assert_eq!(map.get(&"a", at(160)), None);
    }

    #[test]
    fn insert_new_holds_off_a_second_insert_while_the_first_counts() {
        let start = Instant::now();
        let map = ExpiringMap::new(Duration::from_secs(60));
        assert!(map.insert_new(("uid", 1), (), start));
        assert!(!map.insert_new(("uid", 1), (), start + Duration::from_secs(59)));
        assert!(map.insert_new(("uid", 2), (), start));
        assert!(map.insert_new(("uid", 1), (), start + Duration::from_secs(60)));
    }

    #[test]
    fn entries_of_objects_no_longer_seen_are_dropped_as_the_map_is_used() {
        let start = Instant::now();
        let ttl = Duration::from_secs(1);
        let map = ExpiringMap::new(ttl);
        for uid in 0..100 {
            map.insert(uid, (), start);
        }
        assert_eq!(map.len(), 100);
        map.insert(1000, (), start + ttl * 2);
        assert_eq!(map.len(), 1, "the 100 expired entries were kept");
    }
}
