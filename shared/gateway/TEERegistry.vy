# pragma version ~=0.4.0
# @title A local TEE registry with the ABI of OpenGradient's TEERegistry (the read side).
# @notice For tests and the demo only. The real contract verifies a Nitro attestation
#         document with a precompile at registration; here the admin enters a TEE directly
#         (registerTEE), which stands in for registerTEEWithAttestation. "Active" is the real
#         rule: enabled, a heartbeat no older than heartbeatMaxAge, and an approved PCR hash.

struct OhttpConfig:
    keyId: uint8
    kemId: uint16
    kdfId: uint16
    aeadId: uint16
    publicKey: Bytes[256]
    keyConfig: Bytes[512]
    registeredAt: uint256

struct TEEInfo:
    owner: address
    paymentAddress: address
    endpoint: String[256]
    publicKey: Bytes[1024]
    tlsCertificate: Bytes[2048]
    pcrHash: bytes32
    teeType: uint8
    enabled: bool
    registeredAt: uint256
    lastHeartbeatAt: uint256
    ohttpConfig: OhttpConfig

MAX_TEES: constant(uint256) = 32

admin: public(address)
heartbeatMaxAge: public(uint256)
approved: HashMap[uint8, HashMap[bytes32, bool]]
tees: HashMap[bytes32, TEEInfo]
known: HashMap[bytes32, bool]
teeIds: DynArray[bytes32, MAX_TEES]


@deploy
def __init__():
    self.admin = msg.sender
    self.heartbeatMaxAge = 1800


@external
def approvePCR(pcrHash: bytes32, teeType: uint8):
    assert msg.sender == self.admin, "not admin"
    self.approved[teeType][pcrHash] = True


@external
def revokePCR(pcrHash: bytes32, teeType: uint8):
    assert msg.sender == self.admin, "not admin"
    self.approved[teeType][pcrHash] = False


@external
def registerTEE(publicKey: Bytes[1024], tlsCertificate: Bytes[2048], paymentAddress: address,
                endpoint: String[256], pcrHash: bytes32, teeType: uint8) -> bytes32:
    assert msg.sender == self.admin, "not admin"
    assert self.approved[teeType][pcrHash], "pcr not approved"
    teeId: bytes32 = keccak256(publicKey)
    assert not self.known[teeId], "already registered"
    self.known[teeId] = True
    self.teeIds.append(teeId)
    noOhttp: OhttpConfig = empty(OhttpConfig)
    self.tees[teeId] = TEEInfo(
        owner=msg.sender, paymentAddress=paymentAddress, endpoint=endpoint,
        publicKey=publicKey, tlsCertificate=tlsCertificate, pcrHash=pcrHash, teeType=teeType,
        enabled=True, registeredAt=block.timestamp, lastHeartbeatAt=block.timestamp,
        ohttpConfig=noOhttp)
    return teeId


@external
def setEndpoint(teeId: bytes32, endpoint: String[256]):
    assert msg.sender == self.admin, "not admin"
    self.tees[teeId].endpoint = endpoint


@external
def setTLSCertificate(teeId: bytes32, tlsCertificate: Bytes[2048]):
    assert msg.sender == self.admin, "not admin"
    self.tees[teeId].tlsCertificate = tlsCertificate


@external
def setPaymentAddress(teeId: bytes32, paymentAddress: address):
    assert msg.sender == self.admin, "not admin"
    self.tees[teeId].paymentAddress = paymentAddress


@external
def disableTEE(teeId: bytes32):
    assert msg.sender == self.admin, "not admin"
    self.tees[teeId].enabled = False


@external
def enableTEE(teeId: bytes32):
    assert msg.sender == self.admin, "not admin"
    self.tees[teeId].enabled = True


@external
def heartbeat(teeId: bytes32):
    # the real one checks an RSA-PSS signature by the TEE key (a precompile); here: admin only
    assert msg.sender == self.admin, "not admin"
    assert self.known[teeId] and self.tees[teeId].enabled, "not enabled"
    self.tees[teeId].lastHeartbeatAt = block.timestamp


@view
@internal
def _active(info: TEEInfo) -> bool:
    if not info.enabled:
        return False
    if block.timestamp - info.lastHeartbeatAt > self.heartbeatMaxAge:
        return False
    return self.approved[info.teeType][info.pcrHash]


@view
@external
def getActiveTEEs(teeType: uint8) -> DynArray[TEEInfo, MAX_TEES]:
    found: DynArray[TEEInfo, MAX_TEES] = []
    for teeId: bytes32 in self.teeIds:
        info: TEEInfo = self.tees[teeId]
        if info.teeType == teeType and self._active(info):
            found.append(info)
    return found


@view
@external
def getTEE(teeId: bytes32) -> TEEInfo:
    return self.tees[teeId]


@view
@external
def isTEEActive(teeId: bytes32) -> bool:
    return self.known[teeId] and self._active(self.tees[teeId])
