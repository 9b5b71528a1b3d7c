from typing import Optional, Tuple

from _nfct.flow import Flow

def lookup_requests(flow: Flow) -> Optional[Tuple[bytes, bytes]]: ...
