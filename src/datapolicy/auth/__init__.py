"""Authentication and permissions: bearer JWTs checked against configured keys, and Graph's
permission names. Knows nothing of HTTP: which route needs which permission is declared in the
route table (web/routes/table.py), and `datapolicy.web.middleware.auth` maps this package's
answers to Graph's 401 and 403 bodies.

    keys.py         the service's own signing key; JWKS from a URL or a file, refetched on an
                    unknown key id
    tokens.py       a token -> `Principal` (or `Unauthenticated` naming the failed check);
                    issuing tokens with the service's own key
    cache.py        validated tokens, until they expire
    permissions.py  the permission names, and `Requirement`: what a request must show
    configure.py    the validator that the `[auth]` configuration asks for

The package's own import stays empty so that the command line can read the permission names
without loading the JOSE library.
"""
