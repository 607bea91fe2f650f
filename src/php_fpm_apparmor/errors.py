"""The one error type every step raises for bad input: it always names the file and line."""


class ConfigError(Exception):
    """A config or policy problem the admin must fix; printed as one line, never a traceback."""

    def __init__(self, file, line, message):
        super().__init__(message)
        self.file = str(file) if file is not None else None
        self.line = line
        self.message = message

    def __str__(self):
        where = self.file or "<input>"
        if self.line:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}"


class PolicyError(Exception):
    """Generated policy that must not be installed (validation or invariant failure)."""


class PluginError(ValueError):
    """An app plugin broke the contract for one pool: its hook raised or returned a wrong
    value. A ValueError, so the pipeline turns it into that pool's failure (the others go on);
    the message names the plugin, the hook and the bad value."""

    def __init__(self, plugin: str, hook: str, message: str):
        super().__init__(f"plugin {plugin}: {hook}: {message}")
        self.plugin = plugin
        self.hook = hook
        self.message = message


class LibraryError(RuntimeError):
    """A library (python3-apparmor, LibAppArmor, pluggy) did not behave as we expect (an
    API change, a bug): one line naming the call, never a rule silently left unchecked."""
