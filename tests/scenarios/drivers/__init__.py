"""One driver per platform for the restart scenarios (see ``base.Driver``)."""
