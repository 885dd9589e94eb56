"""What runs on the plain hosts themselves (inside modules shipped to them): standard library
only, checked by a test that imports it with yaml, jinja2 and cryptography blocked."""
