"""HTTP routers, one per resource of the contract (plus the no-auth CDN/S3 and admin routes)."""
