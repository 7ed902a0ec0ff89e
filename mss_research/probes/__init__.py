"""One-off measurements behind the experiment records (``experiments/``)."""


def inputs_as_they_come(model):
    """``model`` with no levels of its own: it sees tracks and clips as they come. The probes whose
    recorded figures were measured so (``mss_research.probes``) run models this way to reproduce them."""
    model.config.mixture_dbfs = model.config.clip_dbfs = None
    return model
