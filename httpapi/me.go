package httpapi

import "github.com/labstack/echo/v4"

// selfServiceRoutes registers its routes (being built).
func (s *Server) selfServiceRoutes(e *echo.Echo) {}
