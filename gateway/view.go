package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// view is an in-memory copy of a KV bucket, kept current by a watcher. Each
// natter process has its own; they agree because they watch the same bucket.
// Exact answers (does this room exist?) still go to the bucket; the view
// serves listings and counts without scanning it.
type view struct {
	mu      sync.RWMutex
	entries map[string][]byte
	gone    map[string]goneEntry // values of keys removed lately, for names of those who left
	ready   chan struct{}
	watcher jetstream.KeyWatcher
}

type goneEntry struct {
	val []byte
	at  time.Time
}

// goneFor is how long a removed key's last value is remembered.
const goneFor = 10 * time.Minute

// watchBucket starts a view of kv that lives as long as life and returns
// once it holds the bucket's current values, or ctx ends. onRemove, if set,
// runs after a key is removed (deleted, purged or expired).
func watchBucket(ctx, life context.Context, kv jetstream.KeyValue, onRemove func(key string)) (*view, error) {
	w, err := kv.WatchAll(life)
	if err != nil {
		return nil, fmt.Errorf("watch bucket %s: %w", kv.Bucket(), err)
	}
	v := &view{entries: map[string][]byte{}, gone: map[string]goneEntry{}, ready: make(chan struct{}), watcher: w}
	go func() {
		readyOnce := sync.OnceFunc(func() { close(v.ready) })
		defer readyOnce()
		for e := range w.Updates() {
			if e == nil { // the initial values are all in
				readyOnce()
				continue
			}
			if e.Operation() == jetstream.KeyValuePut {
				v.set(e.Key(), e.Value())
				continue
			}
			v.remove(e.Key())
			if onRemove != nil {
				onRemove(e.Key())
			}
		}
	}()
	select {
	case <-v.ready:
	case <-ctx.Done():
		w.Stop()
		return nil, fmt.Errorf("watch bucket %s: %w", kv.Bucket(), ctx.Err())
	}
	return v, nil
}

// snapshot copies the entries whose key passes keep.
func (v *view) snapshot(keep func(key string) bool) map[string][]byte {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make(map[string][]byte)
	for k, val := range v.entries {
		if keep(k) {
			out[k] = val
		}
	}
	return out
}

func (v *view) get(key string) ([]byte, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	b, ok := v.entries[key]
	return b, ok
}

// set records a write this process made, so it reads its own writes at once
// instead of after the watcher catches up.
func (v *view) set(key string, val []byte) {
	v.mu.Lock()
	v.entries[key] = val
	v.mu.Unlock()
}

// lastValue is the key's value, or its last value if it was removed lately.
func (v *view) lastValue(key string) ([]byte, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if b, ok := v.entries[key]; ok {
		return b, true
	}
	g, ok := v.gone[key]
	return g.val, ok
}

func (v *view) remove(key string) {
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if val, ok := v.entries[key]; ok {
		v.gone[key] = goneEntry{val, now}
		delete(v.entries, key)
	}
	for k, g := range v.gone {
		if now.Sub(g.at) > goneFor {
			delete(v.gone, k)
		}
	}
}

// removePrefix forgets every key starting with prefix: a stream purge
// removes keys without telling watchers.
func (v *view) removePrefix(prefix string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k := range v.entries {
		if strings.HasPrefix(k, prefix) {
			delete(v.entries, k)
		}
	}
}

func (v *view) stop() {
	if v != nil {
		v.watcher.Stop()
	}
}
