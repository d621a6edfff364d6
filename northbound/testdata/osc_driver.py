"""Run many `openstack` commands in one Python process, for the tests.

Each `openstack` process spends 1-2 s starting Python, importing the client
and scanning entry points; the northbound tests run a few hundred commands.
This driver pays that once. It is the real client: every request runs
openstackclient.shell.main(argv), the function /usr/bin/openstack calls,
with a new OpenStackShell (so a new client manager, session and options)
each time.

Protocol: one JSON object a line on stdin, {"argv": [...], "env": ["K=V",
...]}; one JSON object a line on file descriptor 3, {"stdout": "...",
"stderr": "...", "code": N}. The process's own stdout and stderr carry only
what escapes the capture (the test shows them if the driver fails). EOF on
stdin ends it.
"""

import copy
import io
import json
import logging
import os
import sys
import traceback
import warnings

# cliff names the program (messages, --version, its logger) after
# sys.argv[0] when it is imported.
sys.argv = ["openstack"]

from osc_lib import clientmanager  # noqa: E402
from openstackclient import shell  # noqa: E402
from openstackclient.common import clientmanager as osc_clientmanager  # noqa: E402


def _forget_clients():
    """Drop the API clients the last command made.

    osc_lib caches each client (identity, network, compute, ...) in a
    ClientCache descriptor on the ClientManager class, so within one process
    the second command would reuse the first one's clients: its endpoint and
    its token. A new process starts without them; so does each command here.
    """
    classes = [clientmanager.ClientManager, osc_clientmanager.ClientManager]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        for attr in vars(cls).values():
            if isinstance(attr, clientmanager.ClientCache):
                attr._handle = None


def _module_state(mod):
    """The plain module-level values of mod: what make_client may change."""
    return {k: copy.copy(v) for k, v in vars(mod).items()
            if not k.startswith("__") and (v is None or isinstance(v, (dict, list, set, str, int, float, bool)))}


# The API client modules (compute, volume, identity, network and the
# plugins') keep state in module globals that their make_client changes
# the first time it runs: volume's deletes API_VERSIONS['1'] (a second
# call in one process raises KeyError), compute's remembers a requested
# microversion. Each command starts from the state they had at import.
_PLUGIN_STATE = [(m, _module_state(m)) for m in osc_clientmanager.PLUGIN_MODULES]


def _restore_plugin_modules():
    for mod, state in _PLUGIN_STATE:
        for k, v in state.items():
            cur = getattr(mod, k, None)
            if type(cur) is type(v) and isinstance(v, (dict, set)):
                cur.clear()
                cur.update(copy.copy(v))  # in place: other modules may hold it
            elif type(cur) is type(v) and isinstance(v, list):
                cur[:] = v
            else:
                setattr(mod, k, copy.copy(v))


def _stream():
    # A text stream with an encoding and no tty, as a pipe is.
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)


def _text(stream):
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", errors="replace")


def run(argv, env):
    """Run one command as `openstack argv...` would, return its output."""
    saved_env = dict(os.environ)
    saved_streams = (sys.stdin, sys.stdout, sys.stderr, sys.argv)
    saved_filters = warnings.filters[:]
    root = logging.getLogger("")
    saved_handlers = root.handlers[:]
    saved_levels = {name: lg.level for name, lg in logging.Logger.manager.loggerDict.items()
                    if isinstance(lg, logging.Logger)}
    saved_root_level = root.level
    out, err = _stream(), _stream()
    _forget_clients()
    _restore_plugin_modules()
    os.environ.clear()
    os.environ.update(env)
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), out, err
    sys.argv = ["openstack"] + argv
    try:
        code = shell.main(argv)
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=err)
            code = 1
    except BaseException:  # what the interpreter would print, then exit 1
        traceback.print_exc(file=err)
        code = 1
    finally:
        # Undo what a command leaves process-wide: logging handlers and
        # levels (osc_lib's LogConfigurator adds a handler per run),
        # warning filters, the environment, the streams, cached clients.
        _forget_clients()
        for h in root.handlers[:]:
            if h not in saved_handlers:
                root.removeHandler(h)
        root.setLevel(saved_root_level)
        for name, lg in logging.Logger.manager.loggerDict.items():
            if isinstance(lg, logging.Logger):
                lg.setLevel(saved_levels.get(name, logging.NOTSET))
        warnings.filters[:] = saved_filters
        os.environ.clear()
        os.environ.update(saved_env)
        sys.stdin, sys.stdout, sys.stderr, sys.argv = saved_streams
    if not isinstance(code, int):
        code = 1
    return {"stdout": _text(out), "stderr": _text(err), "code": code}


def main():
    replies = os.fdopen(3, "w", encoding="utf-8")
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        env = dict(kv.split("=", 1) for kv in req["env"] if "=" in kv)
        replies.write(json.dumps(run(req["argv"], env)) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
