// Package kafka is a minimal stand-in for github.com/segmentio/kafka-go (no module proxy here):
// just enough of its Reader for SFGI's rules-file test. The go.mod of the test program replaces
// the real module with this directory, so frames read exactly as with the real client:
// github.com/segmentio/kafka-go.(*Reader).FetchMessage, blocked in a select on the reader's
// message channel, its error channel and ctx.Done(), as the real FetchMessage does.
package kafka

import (
	"context"
	"errors"
	"sync"
)

// Message is one Kafka record.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
}

// ReaderConfig configures a Reader.
type ReaderConfig struct {
	Brokers []string
	GroupID string
	Topic   string
}

// Reader consumes messages of one topic.
type Reader struct {
	config    ReaderConfig
	msgs      chan Message
	runError  chan error
	done      chan struct{}
	closeOnce sync.Once
	offset    int64
}

// NewReader returns a reader for cfg. This stand-in has no brokers: messages arrive only
// through Deliver.
func NewReader(cfg ReaderConfig) *Reader {
	return &Reader{
		config:   cfg,
		msgs:     make(chan Message),
		runError: make(chan error),
		done:     make(chan struct{}),
	}
}

// Config returns the reader's configuration.
func (r *Reader) Config() ReaderConfig { return r.config }

// FetchMessage waits for the next message (or ctx, or the reader's end).
//
//go:noinline
func (r *Reader) FetchMessage(ctx context.Context) (Message, error) {
	select { // sfgi:blocks
	case <-ctx.Done():
		return Message{}, ctx.Err()
	case err := <-r.runError:
		return Message{}, err
	case m, ok := <-r.msgs:
		if !ok {
			return Message{}, errors.New("kafka: reader closed")
		}
		return m, nil
	case <-r.done:
		return Message{}, errors.New("kafka: reader closed")
	}
}

// ReadMessage fetches the next message and commits it.
//
//go:noinline
func (r *Reader) ReadMessage(ctx context.Context) (Message, error) {
	m, err := r.FetchMessage(ctx)
	if err == nil {
		r.offset = m.Offset + 1
	}
	return m, err
}

// Deliver hands m to a consumer waiting in FetchMessage (test hook, not in the real client).
func (r *Reader) Deliver(m Message) {
	select {
	case r.msgs <- m:
	case <-r.done:
	}
}

// Close stops the reader.
func (r *Reader) Close() error {
	r.closeOnce.Do(func() { close(r.done) })
	return nil
}
