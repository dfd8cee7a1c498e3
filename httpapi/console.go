package httpapi

import "github.com/labstack/echo/v4"

// consoleRoutes registers its routes (being built).
func (s *Server) consoleRoutes(e *echo.Echo) {}
