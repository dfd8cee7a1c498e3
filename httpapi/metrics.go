package httpapi

import "github.com/labstack/echo/v4"

// metricsRoutes registers its routes (being built).
func (s *Server) metricsRoutes(e *echo.Echo) {}
