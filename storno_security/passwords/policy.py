"""The password policy (PW-1, PW-5); shared with MFA's backup codes in
:mod:`storno_security._bcrypt_policy`."""

from storno_security._bcrypt_policy import MIN_SAFE_COST, PasswordPolicy

__all__ = ["MIN_SAFE_COST", "PasswordPolicy"]
