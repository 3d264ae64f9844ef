"""The launch tool on the real launch/*.launch.xml files (resolution only, nothing is started)."""
import io
import os
import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qt_policy.dev.launch import main
from qt_policy.graph.launch_resolve import LaunchError, _Subst
from qt_policy.graph.launch_xml import NodeSpec, _Context, resolve_launch_file
from qt_policy.graph.processes import LaunchedProcesses

REPO_ROOT = Path(__file__).resolve().parents[3]
LAUNCH = REPO_ROOT / 'launch'


def _flag_values(cmd, flag):
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]


def test_policy_launch_defaults():
    (node,) = resolve_launch_file(LAUNCH / 'policy.launch.xml')
    cmd = node.command(python='python')
    assert cmd[:3] == ['python', '-m', 'qt_policy.nodes.policy_node']
    assert cmd[3] == '--ros-args'
    assert _flag_values(cmd, '-r') == ['__node:=qt_policy']  # no namespace pushed: no __ns remap
    (params_file,) = _flag_values(cmd, '--params-file')
    assert Path(params_file).is_file() and params_file.endswith('config/policy.yaml')
    # no checkpoint argument: the params file's checkpoint stands (the empty argument sets another name)
    assert [p.split(':=')[0] for p in _flag_values(cmd, '-p')] == ['unset_launch_argument_checkpoint']
    assert node.required and node.output == 'screen'


def test_args_override_defaults(tmp_path):
    params = tmp_path / 'mine.yaml'
    params.write_text('/**:\n  ros__parameters:\n    dry_run: true\n')
    (node,) = resolve_launch_file(LAUNCH / 'policy.launch.xml',
                                  {'namespace': 'robot1', 'checkpoint': '/models/x', 'params_file': str(params)})
    cmd = node.command()
    assert '__ns:=/robot1' in _flag_values(cmd, '-r')
    assert _flag_values(cmd, '--params-file') == [str(params)]
    assert _flag_values(cmd, '-p') == ['checkpoint:=/models/x']
    # the params file comes before the override, so the launch argument wins as in launch_ros
    assert cmd.index('--params-file') < cmd.index('-p')


def test_sim_demo_includes_and_namespaces():
    nodes = resolve_launch_file(LAUNCH / 'sim_demo.launch.xml', {'namespace': 'cell_a', 'task': 'drawer-open'},
                                check_exec=False)  # sim_arm/recorder entry points may not exist yet
    by_name = {n.name: n for n in nodes}
    assert set(by_name) == {'sim_arm', 'qt_policy', 'qt_recorder'}
    assert {n.namespace for n in nodes} == {'/cell_a'}
    assert [n.exec for n in nodes] == ['sim_arm_node', 'policy_node', 'recorder_node']
    for node in nodes:
        files = [a[1] for a in node.arguments if a[0] == 'params_file']
        assert len(files) == 1 and Path(files[0]).is_file()
    # each include's params_file stays inside its group: the recorder reads its own file, not the policy's
    assert Path(by_name['qt_recorder'].arguments[0][1]).name == 'recorder.yaml'
    assert Path(by_name['qt_policy'].arguments[0][1]).name == 'policy.yaml'
    assert ('param', 'task', 'drawer-open') in by_name['sim_arm'].arguments
    without = resolve_launch_file(LAUNCH / 'sim_demo.launch.xml', {'record': 'false'}, check_exec=False)
    assert [n.name for n in without] == ['sim_arm', 'qt_policy']
    assert "task:=''" in without[0].ros_args()  # an empty value is passed as '' (rcl refuses 'task:=')
    assert all(n.namespace == '' for n in without)


def test_recorder_launch_resolves_structure():
    (node,) = resolve_launch_file(LAUNCH / 'recorder.launch.xml', check_exec=False)
    assert (node.pkg, node.exec, node.name) == ('qt_policy', 'recorder_node', 'qt_recorder')


@pytest.mark.parametrize('given', [False, True])
def test_launch_arguments_override_the_params_file_only_when_given(tmp_path, given):
    """Every value recorder.launch.xml has an argument for, set in a params file: the node is given the
    argument only when the launch command gives it (the real ros2 launch: test_ros2_cli.py)."""
    params = tmp_path / 'mine.yaml'
    params.write_text('/**:\n  ros__parameters:\n    output_dir: mine\n    action_source: teleop\n'
                      '    embodiment: config/embodiments/robosuite_panda.yaml\n')
    args = {'output_dir': 'arg', 'action_source': 'policy', 'embodiment': 'x.yaml'} if given else {}
    (node,) = resolve_launch_file(LAUNCH / 'recorder.launch.xml', {'params_file': str(params), **args},
                                  check_exec=False)
    overrides = {a[1]: a[2] for a in node.arguments if a[0] == 'param'}
    for name in ('output_dir', 'action_source', 'embodiment'):
        assert (name in overrides) == given and (f'unset_launch_argument_{name}' in overrides) != given
        if given:
            assert overrides[name] == args[name]


def test_an_include_is_no_scope_as_in_launch_ros(tmp_path):
    """launch_ros's IncludeLaunchDescription keeps what the included file set; a <group> scopes it."""
    _write(tmp_path, '<arg name="x" default="inner"/>', name='inner.launch.xml')
    leaky = _write(tmp_path, '<include file="inner.launch.xml"/><let name="y" value="$(var x)"/>'
                             '<node pkg="qt_policy" exec="policy_node" name="n"><param name="y" value="$(var y)"/></node>',
                   name='leaky.launch.xml')
    (node,) = resolve_launch_file(leaky, check_exec=False)
    assert ('param', 'y', 'inner') in node.arguments
    scoped = _write(tmp_path, '<group><include file="inner.launch.xml"/></group>'
                              '<node pkg="qt_policy" exec="policy_node" name="n"><param name="y" value="$(var x)"/></node>',
                    name='scoped.launch.xml')
    with pytest.raises(LaunchError, match="'x' is not defined"):
        resolve_launch_file(scoped, check_exec=False)


def _write(tmp_path, body, name='t.launch.xml'):
    path = tmp_path / name
    path.write_text(f'<launch>\n{body}\n</launch>\n')
    return path


@pytest.mark.parametrize("body, message", [
    ('<timer period="1.0"/>', r'unsupported tag <timer>'),
    ('<node pkg="qt_policy" exec="policy_node" respawn="true"/>', r"unsupported attribute\(s\) \['respawn'\]"),
    ('<let name="x" value="$(command ls)"/>', r'unsupported substitution \$\(command'),
    ('<let name="x" value="$(eval 1 + 1)"/>', r'\$\(eval\) takes 1..1 arguments'),  # as launch's: quote the expression
    ('<node pkg="qt_policy" exec="policy_node"><env name="A" value="1"/></node>', r'unsupported tag <env> inside <node>'),
    ('<arg name="robot"/>', r"launch argument 'robot' is required"),
    ('<node pkg="qt_policy" exec="policy_node"><param from="/nope.yaml"/></node>', r"parameter file .* does not exist"),
    ('<node pkg="qt_policy" exec="no_such_node"/>', r"no executable 'no_such_node'"),
    ('<group if="maybe"/>', r"not true/false"),
])
def test_what_the_tool_cannot_run_is_an_error_naming_it(tmp_path, body, message):
    with pytest.raises(LaunchError, match=message):
        resolve_launch_file(_write(tmp_path, body))


def test_an_undeclared_argument_is_an_error():
    with pytest.raises(LaunchError, match=r"unknown launch argument\(s\) \['chekpoint'\]"):
        resolve_launch_file(LAUNCH / 'policy.launch.xml', {'chekpoint': '/x'})


def test_substitutions_and_namespace_rules(tmp_path, monkeypatch):
    monkeypatch.setenv('QT_TEST_ENV', 'from_env')
    ctx = _Context({'a': 'A', 'b': 'a'}, '', set(), ())
    assert _Subst("x$(var a)y", ctx, 'here').run() == 'xAy'
    assert _Subst("$(var $(var b))", ctx, 'here').run() == 'A'
    assert _Subst("$(env QT_TEST_ENV)-$(env QT_UNSET_VAR 'de fault')", ctx, 'here').run() == 'from_env-de fault'
    with pytest.raises(LaunchError, match='not defined'):
        _Subst('$(var nope)', ctx, 'here').run()
    with pytest.raises(LaunchError, match='unterminated'):
        _Subst('$(var a', ctx, 'here').run()
    body = '''
      <group>
        <push-ros-namespace namespace="outer"/>
        <node pkg="qt_policy" exec="policy_node" name="rel" namespace="inner"/>
        <node pkg="qt_policy" exec="policy_node" name="abs" namespace="/top"/>
        <group><push-ros-namespace namespace="deeper"/><node pkg="qt_policy" exec="policy_node" name="d"/></group>
        <remapless/>
      </group>'''
    with pytest.raises(LaunchError, match='remapless'):
        resolve_launch_file(_write(tmp_path, body))
    nodes = resolve_launch_file(_write(tmp_path, body.replace('<remapless/>', '<let name="z" value="1"/>')))
    assert [(n.name, n.namespace) for n in nodes] == [('rel', '/outer/inner'), ('abs', '/top'), ('d', '/outer/deeper')]
    remap = resolve_launch_file(_write(tmp_path, '<node pkg="qt_policy" exec="policy_node">'
                                                  '<remap from="qt/action" to="/arm/action"/></node>'))
    assert remap[0].ros_args()[-2:] == ['-r', 'qt/action:=/arm/action']


def test_cli_print(capsys):
    assert main([str(LAUNCH / 'policy.launch.xml'), 'namespace:=r2', '--print']) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith('# qt_policy: qt_policy/policy_node')
    cmd = shlex.split(out[1])
    assert cmd[1:3] == ['-m', 'qt_policy.nodes.policy_node'] and '__ns:=/r2' in cmd
    assert main([str(LAUNCH / 'policy.launch.xml'), 'bogus', '--print']) == 2


def test_module_entry_point_runs():
    """`python -m qt_policy.dev.launch --print` works as a command (what users type)."""
    out = subprocess.run([sys.executable, '-m', 'qt_policy.dev.launch', str(LAUNCH / 'policy.launch.xml'), '--print'],
                         capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert 'qt_policy.nodes.policy_node' in out.stdout


CHILD = textwrap.dedent('''
    import signal, sys, time
    def main():
        mode = sys.argv[sys.argv.index('--ros-args') + 2].split(':=')[1]  # the __node:=NAME remap
        if mode == 'crasher':
            time.sleep(0.5)
            print('crashing', flush=True)
            sys.exit(3)
        # as a node does (rclpy installs its own handler): a SIGINT ignored by the parent shell (a background
        # job of a non-interactive shell) must not be inherited
        signal.signal(signal.SIGINT, signal.SIG_IGN if mode == 'stubborn' else signal.default_int_handler)
        print('ready', flush=True)
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            print('got SIGINT', flush=True)
    if __name__ == '__main__':
        main()
''')


def test_processes_required_child_and_stop(tmp_path):
    """A required child's exit is reported; stop() ends the others by pid (SIGINT, then SIGKILL)."""
    (tmp_path / 'qt_fake_child.py').write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")

    def spec(name, required):
        return NodeSpec(pkg='x', exec=name, name=name, namespace='', output='screen', required=required,
                        arguments=[], source='test', module='qt_fake_child', function='main')

    out = io.StringIO()
    procs = LaunchedProcesses([spec('polite', False), spec('stubborn', False), spec('crasher', True)],
                              output=out, env=env).start()
    try:
        result = procs.wait(timeout=20)
        assert result is not None and result[0].name == 'crasher' and result[1] == 3
        assert procs.poll()[0].name == 'crasher'
        deadline = time.monotonic() + 20  # both must have their handlers in place before the stop
        while time.monotonic() < deadline and not all(f'[{n}] ready' in out.getvalue() for n in ('polite', 'stubborn')):
            time.sleep(0.05)
        assert all(f'[{n}] ready' in out.getvalue() for n in ('polite', 'stubborn')), out.getvalue()
    finally:
        procs.stop(timeout=5.0)  # 1.5 s was once too short for the polite child on a loaded 2-core machine
    text = out.getvalue()
    assert all(p.poll() is not None for _, p in procs.processes)
    assert '[crasher] crashing' in text
    assert '[polite] got SIGINT' in text
    assert 'stubborn (pid' in text and 'SIGKILL' in text
