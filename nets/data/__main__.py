"""`python -m nets.data convert --from SRC --to FILE.h5`, or `python -m nets.data convert --download
cifar10|cifar100 [--root DIR] --to FILE.h5`."""
from __future__ import annotations

import signal
import sys

from kolmogorov._cli import OneLineArgumentParser, fail


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="python -m nets.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineArgumentParser)
    conv = sub.add_parser("convert", help="write the pickle-free HDF5 that training reads")
    src = conv.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="source", metavar="SRC",
                     help="CIFAR python directory or official .tar.gz (md5-verified), image-folder tree "
                          "DIR/{train,test}/<class>/, or the JPEG CIFAR-10 .npz")
    src.add_argument("--download", choices=("cifar10", "cifar100"),
                     help="download the official archive with torchvision (needs the 'cuda' extra)")
    conv.add_argument("--root", default="data", help="where --download unpacks (default: data)")
    conv.add_argument("--to", dest="destination", required=True, metavar="FILE.h5")
    conv.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .base import DataError
    from .convert import check_destination, convert
    from .download import download_cifar

    def terminated(signum, frame):  # SIGTERM unwinds like Ctrl-C: the temporary file is removed on the way out
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        check_destination(args.destination)  # before a download or a decode that may take minutes
        source = download_cifar(args.download, args.root) if args.download else args.source
        dataset = convert(source, args.destination, progress=not args.no_progress)
    except (DataError, ValueError, OSError) as exc:
        fail(parser.prog, str(exc))
    except KeyboardInterrupt:
        sys.stderr.write(f"{parser.prog}: interrupted; {args.destination} was not written\n")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"wrote {args.destination}: {dataset.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
