"""Everything between a Kinetics-400 copy on disk and a batch of normalised clips."""
