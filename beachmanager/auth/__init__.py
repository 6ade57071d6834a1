"""Beach Gate / Clerk JWT verification against JWKS, and scope checks."""
