"""What makes the dashboard safe to share: allowed hosts (against DNS rebinding), same-origin writes
(against cross-site requests), token and log-in checks, and the security headers of every response.

``middleware.SecurityMiddleware`` applies them, in that order, to every request; the other modules
are the rules themselves, as plain functions.
"""
