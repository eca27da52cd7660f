"""The password hasher (PW-1..PW-4); the implementation is shared with MFA's backup codes in
:mod:`storno_security._bcrypt`."""

import bcrypt

from storno_security._bcrypt import PasswordHasher, VerifiedPassword

__all__ = ["PasswordHasher", "VerifiedPassword", "bcrypt"]
