// Package eventstream carries the events of finished images to clients
// that wait for them without polling: the long poll of GET /v1/images/{id}
// and the server-sent events of GET /v1/events. It is Redis: each user's
// events are appended to a stream of their own, kept an hour, from which a
// client that reconnects replays what it missed (Last-Event-ID); each
// append is also published on one channel, which every API process
// subscribes to once and fans out to its own waiting clients, so an event
// reaches a client whichever replica the upload and the stream went to.
//
// A worker publishes (Stream.ImageFinished, an image.Notifier); an API
// process subscribes (Stream.Subscribe) after starting its Hub.
package eventstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/image"
)

// Config holds the settings of the event streams.
type Config struct {
	// Prefix starts every key and the channel's name.
	Prefix string
	// Retention is how long a user's events can be replayed.
	Retention time.Duration
	// Buffer is how many events a subscriber may fall behind before it is
	// dropped (it reconnects and replays what it missed).
	Buffer int
	// Heartbeat is how long the hub's connection may stay silent before it
	// is pinged, and how long the ping may go unanswered before the
	// connection is taken for lost.
	Heartbeat time.Duration
}

// NewDefaultConfig returns an hour of replay.
func NewDefaultConfig() Config {
	return Config{Prefix: "imagesvc:events:", Retention: time.Hour, Buffer: 64, Heartbeat: 5 * time.Second}
}

// ErrBadEventID is a Last-Event-ID that names no position of a stream.
var ErrBadEventID = failure.New(failure.Invalid, "invalid_event_id", "Last-Event-ID must be an event id this API sent")

// Stream publishes and subscribes to users' events on one Redis.
type Stream struct {
	rdb redis.UniversalClient
	cfg Config
	hub *Hub
}

// New returns a Stream on a Redis client it does not own.
func New(rdb redis.UniversalClient, cfg Config) *Stream {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = NewDefaultConfig().Heartbeat
	}
	return &Stream{rdb: rdb, cfg: cfg}
}

func (s *Stream) key(userID string) string { return s.cfg.Prefix + "user:" + userID }
func (s *Stream) channel() string          { return s.cfg.Prefix + "live" }

// publish appends an event to its user's stream, unless an event of that
// id was appended already (delivery is at least once: a notification
// retried after an error would otherwise show twice), trims the stream to
// the retention, and publishes it for the live subscribers.
var publish = redis.NewScript(`
if redis.call("SET", KEYS[2], "1", "NX", "PX", ARGV[5]) == false then
  return false
end
local id = redis.call("XADD", KEYS[1], "MINID", "~", ARGV[1], "*", "type", ARGV[2], "image", ARGV[3], "data", ARGV[4])
redis.call("PEXPIRE", KEYS[1], ARGV[5])
redis.call("PUBLISH", ARGV[6], ARGV[7] .. "\n" .. id .. "\n" .. ARGV[2] .. "\n" .. ARGV[3] .. "\n" .. ARGV[4])
return id
`)

var _ image.Notifier = (*Stream)(nil)

// ImageFinished implements image.Notifier: it appends the image's event
// to its owner's stream.
func (s *Stream) ImageFinished(ctx context.Context, img *image.Image) error {
	e, err := image.NewEvent(img, time.Now())
	if err != nil {
		return err
	}
	oldest := time.Now().Add(-s.cfg.Retention).UnixMilli()
	keep := (2 * s.cfg.Retention).Milliseconds()
	err = publish.Run(ctx, s.rdb, []string{s.key(img.UserID), s.cfg.Prefix + "seen:" + e.ID},
		oldest, e.Type, img.ID, e.Body, keep, s.channel(), img.UserID).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("publish event: %w", err)
	}
	return nil
}

// Hub receives every published event once per process and hands each to
// the subscribers of its user in this process.
//
// Events published while the hub has no connection to Redis (a failover,
// a restart, a dropped link) never reach it: Redis keeps no backlog for a
// channel. So when the connection is lost every subscription ends (an SSE
// client reconnects with Last-Event-ID and replays what it missed from the
// user's stream; a long poll reads the database), and subscriptions made
// while the hub is reconnecting end as soon as it is back. go-redis would
// resubscribe by itself, silently, and leave them waiting for events that
// were lost; the hub therefore reads the connection itself and makes a new
// one after any error.
type Hub struct {
	stream *Stream
	log    *slog.Logger
	mu     sync.Mutex
	pubsub *redis.PubSub // the current connection; nil between two
	subs   map[string]map[*subscription]struct{}
	closed bool
	stop   chan struct{}
	done   chan struct{}
	// closeOnce closes once: shutdown and Close both do.
	closeOnce sync.Once
}

// StartHub subscribes this process to the live channel, and fails if
// Redis does not confirm within a heartbeat. Subscribe needs it; Close it
// at shutdown.
func (s *Stream) StartHub(ctx context.Context, log *slog.Logger) (*Hub, error) {
	h := &Hub{stream: s, log: log, subs: map[string]map[*subscription]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{})}
	ps, err := h.connect(ctx)
	if err != nil {
		return nil, err
	}
	h.attach(ps) // before any Subscribe: none is ended by it
	go h.run(ps)
	s.hub = h
	return h, nil
}

// connect subscribes a new connection to the live channel and waits for
// Redis to confirm: from then on every published event reaches the hub.
func (h *Hub) connect(ctx context.Context) (*redis.PubSub, error) {
	ctx, cancel := context.WithTimeout(ctx, h.stream.cfg.Heartbeat)
	defer cancel()
	ps := h.stream.rdb.Subscribe(ctx)
	if err := ps.Subscribe(ctx, h.stream.channel()); err != nil {
		ps.Close()
		return nil, fmt.Errorf("subscribe to events: %w", err)
	}
	msg, err := ps.ReceiveTimeout(ctx, h.stream.cfg.Heartbeat)
	if err == nil {
		if _, ok := msg.(*redis.Subscription); !ok {
			err = fmt.Errorf("unexpected %T", msg)
		}
	}
	if err != nil {
		ps.Close()
		return nil, fmt.Errorf("subscribe to events: %w", err)
	}
	return ps, nil
}

// run receives on ps, and on a new connection each time one is lost,
// until Close.
func (h *Hub) run(ps *redis.PubSub) {
	defer close(h.done)
	for {
		err := h.receive(ps)
		// Detached before it is closed, so that a Close in between finds
		// it still open and closes it once.
		alive := h.detach()
		ps.Close()
		if !alive {
			return
		}
		h.log.Warn("event stream connection to Redis lost: open subscriptions ended", "err", err)
		if ps = h.reconnect(); ps == nil {
			return
		}
		// Subscriptions made while there was no connection may have
		// missed events: they end, and the clients come back.
		if !h.attach(ps) {
			ps.Close()
			return
		}
		h.log.Info("event stream connection to Redis back")
	}
}

// reconnect tries to connect again until it succeeds or the hub is
// closed (nil).
func (h *Hub) reconnect() *redis.PubSub {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-h.stop:
			return nil
		case <-time.After(backoff):
		}
		if ps, err := h.connect(context.Background()); err == nil {
			return ps
		}
		// At most a second between tries: a failover is over in a few
		// seconds, and every client of this process waits for it.
		backoff = min(2*backoff, time.Second)
	}
}

// receive hands the events on ps to the subscribers until the connection
// fails. A connection that is silent for a heartbeat gets a PING, and one
// that does not answer it within another is taken for lost (a peer gone
// without a reset would otherwise hold it for many minutes).
func (h *Hub) receive(ps *redis.PubSub) error {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(context.Background(), h.stream.cfg.Heartbeat)
		var nerr net.Error
		if errors.As(err, &nerr) && nerr.Timeout() && !pinged {
			if err := ps.Ping(context.Background()); err != nil {
				return err
			}
			pinged = true
			continue
		}
		if err != nil {
			return err
		}
		pinged = false
		switch msg := msg.(type) {
		case *redis.Message:
			h.dispatch(msg.Payload)
		case *redis.Subscription:
			// go-redis subscribed again on a new connection of its own:
			// what was published in between is lost.
			return errors.New("resubscribed after a lost connection")
		}
	}
}

func (h *Hub) dispatch(payload string) {
	parts := strings.SplitN(payload, "\n", 5)
	if len(parts) != 5 {
		return
	}
	e := image.StreamedEvent{Position: parts[1], Type: parts[2], ImageID: parts[3], Body: []byte(parts[4])}
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[parts[0]] {
		sub.offer(e)
	}
}

// attach makes ps the hub's connection and ends the subscriptions made
// before it; false when the hub is closed.
func (h *Hub) attach(ps *redis.PubSub) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.pubsub = ps
	h.endAll()
	return true
}

// detach forgets the lost connection and ends every subscription; false
// when the hub is closed.
func (h *Hub) detach() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pubsub = nil
	h.endAll()
	return !h.closed
}

// endAll ends every subscription. The hub's lock is held.
func (h *Hub) endAll() {
	for _, subs := range h.subs {
		for sub := range subs {
			sub.end()
		}
	}
	h.subs = map[string]map[*subscription]struct{}{}
}

// Close stops receiving events; subscriptions end. Closing twice is
// harmless.
func (h *Hub) Close() error {
	var err error
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		if h.pubsub != nil {
			err = h.pubsub.Close()
		}
		h.mu.Unlock()
		close(h.stop)
	})
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	h.endAll()
	return err
}

// subscription is one client's view of a user's events.
type subscription struct {
	out   chan image.StreamedEvent
	live  chan image.StreamedEvent
	hub   *Hub
	user  string
	once  sync.Once
	ended chan struct{}
}

// Subscribe returns the events of a user from after the position after:
// those still kept, then the live ones; an empty after means from now. The
// channel carries them in order, once each, and is closed when the
// subscription ends: stop, ctx ending, the hub closing, the hub's
// connection to Redis dropping (see Hub), or the subscriber falling
// Config.Buffer events behind; in each case the client resumes from its
// last position.
func (s *Stream) Subscribe(ctx context.Context, userID, after string) (<-chan image.StreamedEvent, func(), error) {
	if s.hub == nil {
		return nil, nil, errors.New("eventstream: no hub started")
	}
	var from streamID
	if after != "" {
		var ok bool
		if from, ok = parseID(after); !ok {
			return nil, nil, ErrBadEventID
		}
	}
	sub := &subscription{live: make(chan image.StreamedEvent, s.cfg.Buffer), out: make(chan image.StreamedEvent),
		hub: s.hub, user: userID, ended: make(chan struct{})}
	// Live first, so that nothing published between the replay and the
	// live events is lost; what both see is sent once.
	s.hub.mu.Lock()
	if s.hub.closed {
		// Nothing would ever end it (the server is shutting down).
		s.hub.mu.Unlock()
		return nil, nil, failure.New(failure.Unavailable, "events_unavailable", "the event stream is closed")
	}
	if s.hub.subs[userID] == nil {
		s.hub.subs[userID] = map[*subscription]struct{}{}
	}
	s.hub.subs[userID][sub] = struct{}{}
	s.hub.mu.Unlock()
	var replay []image.StreamedEvent
	if after != "" {
		msgs, err := s.rdb.XRangeN(ctx, s.key(userID), "("+after, "+", 10000).Result()
		if err != nil {
			sub.Close()
			return nil, nil, failure.Wrap(failure.Unavailable, "events_unavailable", "the event stream is unavailable", err)
		}
		for _, m := range msgs {
			replay = append(replay, image.StreamedEvent{Position: m.ID, Type: str(m.Values["type"]),
				ImageID: str(m.Values["image"]), Body: []byte(str(m.Values["data"]))})
		}
	}
	go sub.forward(ctx, replay, from)
	return sub.out, sub.Close, nil
}

// Position returns the position of a user's stream now: subscribing after
// it later gets every event from now on.
func (s *Stream) Position(ctx context.Context, userID string) (string, error) {
	last, err := s.rdb.XRevRangeN(ctx, s.key(userID), "+", "-", 1).Result()
	if err != nil {
		return "", failure.Wrap(failure.Unavailable, "events_unavailable", "the event stream is unavailable", err)
	}
	if len(last) == 1 {
		return last[0].ID, nil
	}
	// No events kept: the next one gets an id after Redis' clock now.
	now, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return "", failure.Wrap(failure.Unavailable, "events_unavailable", "the event stream is unavailable", err)
	}
	return strconv.FormatInt(now.UnixMilli(), 10) + "-0", nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// forward sends the replayed events, then the live ones after them.
func (sub *subscription) forward(ctx context.Context, replay []image.StreamedEvent, last streamID) {
	defer close(sub.out)
	defer sub.Close()
	send := func(e image.StreamedEvent) bool {
		id, ok := parseID(e.Position)
		if !ok || !last.less(id) {
			return true // sent already, in the replay
		}
		select {
		case sub.out <- e:
			last = id
			return true
		case <-ctx.Done():
			return false
		case <-sub.ended:
			return false
		}
	}
	for _, e := range replay {
		if !send(e) {
			return
		}
	}
	for {
		select {
		case e, ok := <-sub.live:
			if !ok || !send(e) {
				return
			}
		case <-ctx.Done():
			return
		case <-sub.ended:
			return
		}
	}
}

// offer hands a live event to the subscription, or ends it when it has
// fallen too far behind. The hub's lock is held.
func (sub *subscription) offer(e image.StreamedEvent) {
	select {
	case sub.live <- e:
	default:
		sub.hub.log.Warn("event subscriber too slow, dropped", "user_id", sub.user)
		delete(sub.hub.subs[sub.user], sub)
		sub.end()
	}
}

func (sub *subscription) end() { sub.once.Do(func() { close(sub.ended) }) }

// Close ends the subscription.
func (sub *subscription) Close() {
	sub.hub.mu.Lock()
	delete(sub.hub.subs[sub.user], sub)
	if len(sub.hub.subs[sub.user]) == 0 {
		delete(sub.hub.subs, sub.user)
	}
	sub.hub.mu.Unlock()
	sub.end()
}

// streamID is a Redis stream entry id, milliseconds and sequence.
type streamID struct{ ms, seq uint64 }

func parseID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamID{ms, seq}, ok && err1 == nil && err2 == nil
}

func (a streamID) less(b streamID) bool { return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq }

// PurgeUser deletes a user's stream (an auth.Purger): the events in it
// carry the user's image objects, file names included, and would otherwise
// stay until the stream expires.
func (s *Stream) PurgeUser(ctx context.Context, userID string) error {
	if err := s.rdb.Del(ctx, s.key(userID)).Err(); err != nil {
		return fmt.Errorf("delete event stream: %w", err)
	}
	return nil
}
