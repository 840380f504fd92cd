"""Authentication, authorisation and the audit trail of both apps' HTTP APIs (docs/security.md).

`scopes`: scope names and who holds what; `tokens`: bearer JWT verification; `apikey`: the generated API
key; `guard`: the FastAPI security dependency; `audit`: the audit record, its sinks and middleware;
`setup`: a guard from an app's settings.
"""
