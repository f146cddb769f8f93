"""The on-call console, ``dragonfly console`` (docs/console.md).

- ``auth``: signing in with a Supabase access token (HS256 secret or JWKS) or the static
  admin token;
- ``db``: each request's transaction, run as its operator (role and JWT claims);
- ``app``: the Starlette routes and Jinja2 templates (htmx refreshes the queue table);
- ``charts``: the queue history as inline SVG;
- ``present``: times, ages, and payloads with their secrets scrubbed.
"""
