"""i3dbench: does the published MMAction2 I3D Kinetics-400 zoo hold on your data, hardware and stack?"""

__version__ = "0.1.0"
