"""Control of the density: learning-rate and batch-size schedules by the discrete adjoint (placeholder)."""
