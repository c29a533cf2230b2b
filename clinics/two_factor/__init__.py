"""Two-factor authentication (TOTP with recovery codes, on django-otp): who must use it,
enrolment with a QR code, the second step of logging in, and resets."""
