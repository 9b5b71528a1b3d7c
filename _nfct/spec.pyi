from typing import Any, Dict, Optional, Tuple

from _nfct.format import LabelMap

def spec_request(v: Dict[str, Any], labelmap: Optional[LabelMap] = ...) -> Optional[Tuple[int, bytes]]: ...
