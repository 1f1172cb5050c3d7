package gateway

import (
	"context"
	"fmt"
	"log/slog"
)

// serverLogger bridges nats-server's printf-style logger to slog.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) emit(level slog.Level, format string, v []any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

func (l serverLogger) Noticef(format string, v ...any) { l.emit(slog.LevelInfo, format, v) }
func (l serverLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l serverLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l serverLogger) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }

// Tracef drops the line, whatever the level: nats-server's trace shows
// protocol lines, and a client's CONNECT carries its JWT.
func (l serverLogger) Tracef(format string, v ...any) {}
