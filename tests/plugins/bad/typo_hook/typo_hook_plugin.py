from aligner import hookimpl


@hookimpl
def register_algorithm(register):  # missing the final "s"
    pass
