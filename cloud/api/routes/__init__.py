"""One thin router per resource; the logic lives in :mod:`cloud.services`."""
