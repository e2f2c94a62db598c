# Intune Win32 app install command (run as SYSTEM):
#   powershell.exe -ExecutionPolicy Bypass -File install-intune.ps1 -Server https://collector.example.com:8443
# Package sightline-agent.msi, ca.pem and enroll.token (one-time, from `sightline-server token create`)
# with IntuneWinAppUtil. The token file is deleted once spent; detection rule: the service exists.
param([Parameter(Mandatory = $true)][string]$Server)
$ErrorActionPreference = 'Stop'
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$data = Join-Path $env:ProgramData 'Sightline'
$agent = Join-Path $env:ProgramFiles 'Sightline\sightline-agent.exe'

Start-Process msiexec.exe -Wait -ArgumentList @('/i', (Join-Path $here 'sightline-agent.msi'), '/qn', '/norestart')
New-Item -ItemType Directory -Force -Path $data | Out-Null
Copy-Item (Join-Path $here 'ca.pem') (Join-Path $data 'ca.pem') -Force
if (-not (Test-Path (Join-Path $data 'state\enrollment.json'))) {
    $token = Join-Path $data 'enroll.token'
    Copy-Item (Join-Path $here 'enroll.token') $token -Force
    & $agent enroll --server $Server --token-file $token --ca (Join-Path $data 'ca.pem')
    $code = $LASTEXITCODE
    Remove-Item $token -Force
    if ($code -ne 0) { exit $code }
}
# Restart on failure (the MSI cannot say it: see README.md), then start with the enrollment.
& sc.exe failure SightlineAgent reset= 86400 actions= restart/30000/restart/30000/restart/30000 | Out-Null
Restart-Service SightlineAgent
