"""Password hashing: bcrypt with no silent truncation, rehash on policy change, and equal timing
for unknown users (PW-1..PW-5).

>>> from storno_security.passwords import PasswordHasher, PasswordPolicy
>>> hasher = PasswordHasher(PasswordPolicy.insecure_for_tests())
>>> stored = hasher.hash("correct horse battery staple")
>>> hasher.verify("correct horse battery staple", stored).needs_rehash
False
"""

from storno_security.passwords.hasher import PasswordHasher, VerifiedPassword
from storno_security.passwords.policy import PasswordPolicy

__all__ = ["PasswordHasher", "PasswordPolicy", "VerifiedPassword"]
