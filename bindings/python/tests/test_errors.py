"""The exception hierarchy and the package surface."""

import conode


def test_hierarchy():
    assert issubclass(conode.ConodeError, Exception)
    for cls in (conode.ConfigError, conode.NetworkError, conode.StorageError, conode.StateError, conode.VerifyError):
        assert issubclass(cls, conode.ConodeError), cls
    assert issubclass(conode.AlreadyRunningError, conode.StateError)
    assert issubclass(conode.NotRunningError, conode.StateError)
    assert conode.ConfigError.__module__ == "conode"
    assert conode.ConfigError.__name__ == "ConfigError"


def test_attributes_default_to_none_when_raised_from_python():
    e = conode.ConfigError("x")
    assert e.file is None and e.field is None
    assert conode.NetworkError("y").url is None


def test_surface():
    for name in conode.__all__:
        assert hasattr(conode, name), name
    assert conode.__version__.count(".") == 2
    assert conode.enable_logging(0) in (True, False)
