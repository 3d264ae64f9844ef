"""ament_python setup for qt_policy.

Besides the package itself this installs, into share/qt_policy, the repo-level
launch/, config/ and models/ directories (they live at the repository root,
two levels above this file). Missing directories are skipped.
"""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'qt_policy'

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))


def _tree(src_dir, dest_dir):
    """data_files entries for every file under REPO_ROOT/src_dir (recursive), paths relative to HERE."""
    root = os.path.join(REPO_ROOT, src_dir)
    entries = {}
    if not os.path.isdir(root):
        return []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.') and d != '__pycache__')
        files = [
            os.path.relpath(os.path.join(dirpath, f), HERE)
            for f in sorted(filenames)
            if not f.startswith('.') and not f.endswith('.pyc')
        ]
        if files:
            rel = os.path.relpath(dirpath, root)
            target = dest_dir if rel == '.' else os.path.join(dest_dir, rel)
            entries.setdefault(target, []).extend(files)
    return sorted(entries.items())


share = os.path.join('share', package_name)
data_files = [
    ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
    (share, ['package.xml']),
]
data_files += _tree('launch', os.path.join(share, 'launch'))
data_files += _tree('config', os.path.join(share, 'config'))
data_files += _tree('models', os.path.join(share, 'models'))

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=data_files,
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='qt_ros developers',
    maintainer_email='dev@example.com',
    description='Q-Transformer offline RL policy for robot arms (ROS 2).',
    license='Apache-2.0',
    entry_points={
        # Installed into lib/qt_policy (setup.cfg): `ros2 run qt_policy <name>`; scripts/env.sh puts that
        # folder on PATH for the wheel install. The CLIs carry a qt- prefix so that none shadows a system
        # command (convert, view, launch) when it is on PATH.
        'console_scripts': [
            # the nodes
            'policy_node = qt_policy.nodes.policy_node:main',
            'recorder_node = qt_policy.nodes.recorder_node:main',
            'sim_arm_node = qt_policy.nodes.sim_arm_node:main',
            'scripted_teleop_node = qt_policy.nodes.scripted_teleop_node:main',
            'scripted_operator_node = qt_policy.nodes.scripted_operator_node:main',
            # record -> train -> evaluate (qt_policy/tools)
            'qt-train = qt_policy.tools.train:main',
            'qt-evaluate = qt_policy.tools.evaluate:main',
            'qt-generate = qt_policy.tools.generate:main',
            'qt-import-bags = qt_policy.tools.import_bags:main',
            'qt-convert = qt_policy.tools.convert:main',
            'qt-salvage = qt_policy.tools.salvage:main',
            'qt-lerobot-export = qt_policy.tools.lerobot_export:main',
            'qt-view = qt_policy.tools.view:main',
            'qt-export = qt_policy.tools.export:main',
            'qt-flywheel = qt_policy.tools.flywheel:main',
            # research tools (qt_policy/research)
            'qt-baselines = qt_policy.research.baselines:main',
            'qt-algorithms = qt_policy.research.algorithms:main',
            'qt-diagnose = qt_policy.research.diagnose:main',
            'qt-plot-training = qt_policy.research.plot_training:main',
            'qt-parity = qt_policy.research.parity:main',
            'qt-ensemble = qt_policy.research.ensemble:main',
            'qt-flywheel-report = qt_policy.research.flywheel_report:main',
            # development stand-ins (qt_policy/dev): the demo, and `ros2 launch` where launch_ros is missing
            'qt-demo = qt_policy.dev.demo:main',
            'qt-launch = qt_policy.dev.launch:main',
            'qt-selfcheck = qt_policy.selfcheck:main',
        ],
    },
)
