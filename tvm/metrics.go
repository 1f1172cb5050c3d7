package tvm

import (
	"github.com/labstack/echo/v4"

	"github.com/natterchat/natter"
)

// countTokens counts the token endpoint's answers: a token issued, or a
// refusal by the error code the client reads. It runs before the endpoint's
// other middleware, so the per-address rate limit and the body limit are
// counted as refusals too.
func (s *Server) countTokens(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err != nil {
			s.cfg.Metrics.TokenRefused(natter.ErrorCode(ours(err)))
		} else {
			s.cfg.Metrics.TokenIssued()
		}
		return err
	}
}
