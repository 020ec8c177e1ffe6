"""Train an agent on ListeningSession-v0 and compare it with the baselines (``python train.py --help``)."""

from agents.train import main

if __name__ == "__main__":
    main()
