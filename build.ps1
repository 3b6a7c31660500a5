#!/usr/bin/env pwsh
# KmemNative build entry point (PowerShell 7 twin of build.sh; same verbs, output and exit codes).
#
#   pwsh ./build.ps1 build | test | native | demo | bench [--quick] [--native] [ARGS...] | kmem [ARGS...] | clean | help
#
# Runs under the repository's local tool:  dotnet tool restore; dotnet tool run pwsh -- -NoProfile -File ./build.ps1 build
# No param() block on purpose: every argument (also --help, -h, --quick) arrives verbatim in $args.
#Requires -Version 7.0
Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$PSNativeCommandUseErrorActionPreference = $false # exit codes are checked explicitly
$ProgressPreference = 'SilentlyContinue'

$Root = $PSScriptRoot
Set-Location -LiteralPath $Root

$Sln = 'KmemNative.sln'
$Config = 'Release'
$CliProj = 'src/KmemNative.Cli'
$TestProj = 'tests/KmemNative.Tests'
$BenchProj = 'bench/KmemNative.Bench'
$InteropProj = 'src/KmemNative.Interop'
$Artifacts = Join-Path $Root 'artifacts'
$BinDir = Join-Path $Artifacts 'bin'
$ResultsDir = Join-Path $Artifacts 'test-results'
$NativeDir = Join-Path $Root 'native'
$NativeBuild = Join-Path $NativeDir 'build'
$NativeAptPackages = @('cmake', 'g++', 'libbenchmark-dev', 'zlib1g-dev')
$Kmem = Join-Path $BinDir ($IsWindows ? 'kmem.exe' : 'kmem')

# ------------------------------------------------------------------ environment
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'
$env:DOTNET_SKIP_FIRST_TIME_EXPERIENCE = '1'
$env:DOTNET_CLI_WORKLOAD_UPDATE_NOTIFY_DISABLE = '1'
$env:DOTNET_GENERATE_ASPNET_CERTIFICATE = 'false'
if (-not $env:NUGET_XMLDOC_MODE) { $env:NUGET_XMLDOC_MODE = 'skip' }

# MSBuild flags: minimal verbosity (errors and warnings stay visible); dotnet never prompts
# unless given --interactive. RunFlags suit `dotnet run` too, which would hand -nologo to the program.
$RunFlags = @('-v', 'minimal')
if ($env:CI -or [Console]::IsOutputRedirected) {
    $env:MSBUILDTERMINALLOGGER = 'off'
    # No MSBuild worker nodes outliving this script: they would keep CI's output pipe open.
    $env:MSBUILDDISABLENODEREUSE = '1'
    $RunFlags += @('--tl:off', '-clp:NoSummary')
}
$DotnetFlags = @('-nologo') + $RunFlags

# A failed step: carries the exit code the script ends with.
class BuildFailure : System.Exception {
    [int] $ExitCode
    BuildFailure([string] $message, [int] $exitCode) : base($message) { $this.ExitCode = $exitCode }
}

function Say([string] $Message) { Write-Output "==> $Message" }
function Warn([string] $Message) { [Console]::Error.WriteLine("build.ps1: $Message") }
function Fail([string] $Message, [int] $ExitCode = 1) { throw [BuildFailure]::new($Message, $ExitCode) }
function Rel([string] $Path) { [IO.Path]::GetRelativePath($Root, $Path) -replace '\\', '/' }

# Run a program; a non-zero exit code becomes a BuildFailure with that code.
function Invoke-Exe([string] $Exe, [string[]] $ArgList) {
    & $Exe @ArgList
    if ($LASTEXITCODE -ne 0) { Fail "$Exe $($ArgList -join ' ') exited with code $LASTEXITCODE" $LASTEXITCODE }
}

function Assert-Dotnet {
    $cmd = Get-Command dotnet -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if (-not $cmd) { Fail ".NET SDK not found: put 'dotnet' on PATH (see global.json for the version)" }
    # Let the framework-dependent apphost (artifacts/bin/kmem) find the runtime the SDK came with.
    if (-not $env:DOTNET_ROOT) {
        $exe = $cmd.Source
        $target = [IO.File]::ResolveLinkTarget($exe, $true)
        if ($target) { $exe = $target.FullName }
        $dir = Split-Path -Parent $exe
        if (Test-Path -LiteralPath (Join-Path $dir 'host/fxr')) { $env:DOTNET_ROOT = $dir }
    }
}

function Show-Usage {
    Write-Output @'
usage: ./build.ps1 VERB [ARGS...]

verbs:
  build                 restore + build the solution (Release), publish the CLI to artifacts/bin/kmem
  test                  build, run all test runners (dotnet test; ctest when native/CMakeLists.txt exists),
                        print "N passed, N failed"; fails if any test failed or none ran
  native                publish src/KmemNative.Interop (NativeAOT) and build/test native/ with CMake + ctest
  demo                  build, run `artifacts/bin/kmem demo` (tour + study scripts), replay trace A, write
                        pictures of memory to artifacts/pictures/ (PNG too when rsvg-convert exists)
  bench [--quick] [--native] [ARGS...]
                        run the BenchmarkDotNet suite (Release; arguments go to the benchmark program), then the
                        C ABI's Google Benchmark run against glibc (skipped with --filter); --native: only the latter
  kmem [ARGS...]        run the CLI, rebuilding it first if any src/**/*.cs or *.csproj is newer
  clean                 dotnet clean, remove artifacts/ and native/build/
  help                  this text

environment: CI=1 (or redirected output) selects plain, non-interactive build output.
'@
}

# ------------------------------------------------------------------ build
# The CLI is published with NativeAOT when the toolchain allows, so a cold `kmem replay` needs no JIT start-up;
# KMEM_AOT=0 or a failed AOT publish falls back to the framework-dependent apphost (as build.sh does).
function Publish-Cli {
    $aot = $env:KMEM_AOT -ne '0'
    if ($aot) {
        $platform = Get-NativePlatform
        & dotnet (@('publish', $CliProj, '-c', $Config, '-r', $platform.Rid, '-p:PublishAot=true', '-o', $BinDir) + $DotnetFlags)
        if ($LASTEXITCODE -ne 0) {
            Warn 'NativeAOT publish of the CLI failed; publishing the JIT build instead'
            $aot = $false
        }
        else {
            foreach ($f in @('kmem.dll', 'kmem.runtimeconfig.json', 'kmem.deps.json')) {
                Remove-Item -LiteralPath (Join-Path $BinDir $f) -ErrorAction SilentlyContinue
            }
        }
    }
    if (-not $aot) {
        Invoke-Exe dotnet (@('publish', $CliProj, '-c', $Config, '-o', $BinDir) + $DotnetFlags)
    }
    if (-not (Test-Path -LiteralPath $Kmem)) { Fail "publish did not produce $Kmem" }
    # An incremental publish keeps the apphost's old timestamp; `kmem` compares against it.
    (Get-Item -LiteralPath $Kmem).LastWriteTimeUtc = [DateTime]::UtcNow
}

function Invoke-Build {
    Assert-Dotnet
    Say "restore $Sln"
    Invoke-Exe dotnet (@('restore', $Sln) + $DotnetFlags)
    Say "build $Sln ($Config)"
    Invoke-Exe dotnet (@('build', $Sln, '-c', $Config, '--no-restore') + $DotnetFlags)
    Say "publish $CliProj -> $(Rel $Kmem)"
    Publish-Cli
}

# ------------------------------------------------------------------ test
$script:TotalPassed = 0
$script:TotalFailed = 0
$script:TotalSkipped = 0

function Get-IntAttr($Node, [string] $Name) {
    if ($null -eq $Node) { return 0 }
    $value = $Node.GetAttribute($Name)
    if ($value -match '^\d+$') { return [int] $value } else { return 0 }
}

# Record one runner's result. A runner that exited non-zero without reporting a failed test
# (crash, build error, missing result file) counts as one failure so the summary never looks green.
function Add-Counts([string] $Name, [int] $Passed, [int] $Failed, [int] $Skipped, [int] $ExitCode) {
    if ($ExitCode -ne 0 -and $Failed -eq 0) {
        Warn "${Name}: runner exited with code $ExitCode without a failed test; counted as 1 failed"
        $Failed = 1
    }
    # Deliberately not in the "N passed, N failed" shape: only the final summary line has that.
    Write-Output "$Name results: passed=$Passed failed=$Failed skipped=$Skipped"
    $script:TotalPassed += $Passed
    $script:TotalFailed += $Failed
    $script:TotalSkipped += $Skipped
}

function Invoke-DotnetTests {
    $trxName = 'dotnet-tests.trx'
    $trx = Join-Path $ResultsDir $trxName
    Remove-Item -LiteralPath $trx -Force -ErrorAction SilentlyContinue
    Say "dotnet test $TestProj"
    & dotnet test $TestProj -c $Config --no-build @DotnetFlags `
        --results-directory $ResultsDir --logger "trx;LogFileName=$trxName" --logger 'console;verbosity=minimal'
    $rc = $LASTEXITCODE
    $passed = 0; $failed = 0; $skipped = 0
    if (Test-Path -LiteralPath $trx) {
        $counters = ([xml] (Get-Content -Raw -LiteralPath $trx)).TestRun.ResultSummary.Counters
        $passed = Get-IntAttr $counters 'passed'
        $failed = (Get-IntAttr $counters 'failed') + (Get-IntAttr $counters 'error') +
            (Get-IntAttr $counters 'timeout') + (Get-IntAttr $counters 'aborted')
        # Skipped tests are in the total but not executed.
        $skipped = [Math]::Max(0, (Get-IntAttr $counters 'total') - (Get-IntAttr $counters 'executed'))
    } elseif ($rc -eq 0) {
        Warn "dotnet test wrote no $trx"
        $rc = 1
    }
    Add-Counts 'dotnet test' $passed $failed $skipped $rc
}

function Invoke-NativeTests {
    $junit = Join-Path $ResultsDir 'ctest-junit.xml'
    $log = Join-Path $ResultsDir 'ctest.log'
    Remove-Item -LiteralPath $junit, $log -Force -ErrorAction SilentlyContinue
    $rc = 0
    try { Invoke-Native } catch [BuildFailure] { Warn $_.Exception.Message; $rc = $_.Exception.ExitCode }
    $passed = 0; $failed = 0; $skipped = 0
    if (Test-Path -LiteralPath $junit) {
        $suite = ([xml] (Get-Content -Raw -LiteralPath $junit)).testsuite
        $total = Get-IntAttr $suite 'tests'
        $failed = (Get-IntAttr $suite 'failures') + (Get-IntAttr $suite 'errors')
        $skipped = (Get-IntAttr $suite 'skipped') + (Get-IntAttr $suite 'disabled')
        $passed = [Math]::Max(0, $total - $failed - $skipped)
    } elseif (Test-Path -LiteralPath $log) {
        # ctest < 3.21 has no --output-junit: "80% tests passed, 1 tests failed out of 5"
        $m = Select-String -LiteralPath $log -Pattern '\d+% tests passed, (\d+) tests? failed out of (\d+)' |
            Select-Object -Last 1
        if ($m) {
            $failed = [int] $m.Matches[0].Groups[1].Value
            $passed = [int] $m.Matches[0].Groups[2].Value - $failed
        }
    }
    Add-Counts 'ctest' $passed $failed $skipped $rc
}

function Invoke-Test {
    Invoke-Build
    New-Item -ItemType Directory -Force -Path $ResultsDir | Out-Null
    $summaryFile = Join-Path $ResultsDir 'summary.txt'
    Remove-Item -LiteralPath $summaryFile -Force -ErrorAction SilentlyContinue
    Invoke-DotnetTests
    if (Test-Path -LiteralPath (Join-Path $NativeDir 'CMakeLists.txt')) { Invoke-NativeTests }
    $summary = "$script:TotalPassed passed, $script:TotalFailed failed"
    if ($script:TotalSkipped -ne 0) { $summary += ", $script:TotalSkipped skipped" }
    [IO.File]::WriteAllText($summaryFile, "$summary`n")
    $rc = 0
    if ($script:TotalFailed -gt 0) {
        $rc = 1
    } elseif ($script:TotalPassed -eq 0) {
        Warn 'no test ran: that is a failure'
        $rc = 1
    }
    Write-Output $summary
    exit $rc
}

# ------------------------------------------------------------------ native
# Host-specific names: RID for `dotnet publish -r`, and the shared library the interop project yields.
function Get-NativePlatform {
    $arch = switch ([Runtime.InteropServices.RuntimeInformation]::OSArchitecture) {
        'X64' { 'x64' }
        'Arm64' { 'arm64' }
        default { Fail "native: unsupported CPU $_" }
    }
    if ($IsWindows) { return @{ Rid = "win-$arch"; Lib = 'kmem.dll' } }
    if ($IsMacOS) { return @{ Rid = "osx-$arch"; Lib = 'libkmem.dylib' } }
    if ($IsLinux) { return @{ Rid = "linux-$arch"; Lib = 'libkmem.so' } }
    Fail 'native: unsupported OS'
}

function Install-NativePackages {
    if (-not $IsLinux -or -not (Get-Command dpkg-query -ErrorAction SilentlyContinue)) { return }
    $missing = @($NativeAptPackages | Where-Object {
            $status = & dpkg-query -W '-f=${Status}' $_ 2>$null
            -not ($LASTEXITCODE -eq 0 -and "$status" -match 'install ok installed')
        })
    if ($missing.Count -eq 0) { return }
    if ((& id -u) -ne '0') {
        Warn "native: missing packages $missing; not root, so not installing them (sudo apt-get install -y $missing)"
        return
    }
    Say "apt-get install $missing"
    $env:DEBIAN_FRONTEND = 'noninteractive'
    Invoke-Exe apt-get @('update', '-qq')
    Invoke-Exe apt-get (@('install', '-y', '-qq', '--no-install-recommends') + $missing)
}

# Publishes the interop library (NativeAOT, host RID) and builds native/ with CMake.
function Build-Native {
    $platform = Get-NativePlatform
    Install-NativePackages
    $libDir = Join-Path $Artifacts "native/$($platform.Rid)"
    $lib = Join-Path $libDir $platform.Lib
    if (Test-Path -LiteralPath $InteropProj) {
        Assert-Dotnet
        Say "publish $InteropProj ($($platform.Rid)) -> $(Rel $libDir)"
        Invoke-Exe dotnet (@('publish', $InteropProj, '-c', $Config, '-r', $platform.Rid, '-o', $libDir) + $DotnetFlags)
        if (-not (Test-Path -LiteralPath $lib)) { Warn "native: publish produced no $($platform.Lib) in $(Rel $libDir)" }
    }
    if (-not (Get-Command cmake -ErrorAction SilentlyContinue)) { Fail 'native: cmake not found' }
    $jobs = [string] [Environment]::ProcessorCount
    Say "cmake configure native -> $(Rel $NativeBuild)"
    Invoke-Exe cmake @('-S', $NativeDir, '-B', $NativeBuild, '--no-warn-unused-cli',
        "-DCMAKE_BUILD_TYPE=$Config", "-DKMEM_NATIVE_RID=$($platform.Rid)",
        "-DKMEM_NATIVE_LIB_DIR=$libDir", "-DKMEM_NATIVE_LIB=$lib")
    Say 'cmake build'
    Invoke-Exe cmake @('--build', $NativeBuild, '--config', $Config, '--parallel', $jobs)
}

function Invoke-Native {
    if (-not (Test-Path -LiteralPath (Join-Path $NativeDir 'CMakeLists.txt'))) {
        Write-Output 'native: nothing to build (native/CMakeLists.txt missing)'
        return
    }
    Build-Native
    $jobs = [string] [Environment]::ProcessorCount
    Say 'ctest'
    New-Item -ItemType Directory -Force -Path $ResultsDir | Out-Null
    $junit = Join-Path $ResultsDir 'ctest-junit.xml'
    Remove-Item -LiteralPath $junit -Force -ErrorAction SilentlyContinue
    Push-Location -LiteralPath $NativeBuild
    try {
        & ctest -C $Config --output-on-failure --parallel $jobs --output-junit $junit |
            Tee-Object -FilePath (Join-Path $ResultsDir 'ctest.log')
        $rc = $LASTEXITCODE
    } finally { Pop-Location }
    if ($rc -ne 0) { Fail "ctest exited with code $rc" $rc }
}

# The Google Benchmark run of the C ABI (native/bench): builds what it needs, prints its ratio table.
function Invoke-NativeBench([bool] $Quick) {
    if (-not (Test-Path -LiteralPath (Join-Path $NativeDir 'CMakeLists.txt'))) {
        Warn 'bench: no native/CMakeLists.txt, no native benchmark'
        return
    }
    Build-Native
    $bench = Join-Path $NativeBuild ($IsWindows ? "$Config/kmem_bench.exe" : 'kmem_bench')
    if (-not (Test-Path -LiteralPath $bench)) { Fail "bench: $bench was not built (is Google Benchmark installed?)" }
    $minTime = $Quick ? '0.2' : '1'
    Say 'native benchmark (C ABI vs glibc)'
    Invoke-Exe $bench @("--benchmark_min_time=$minTime", '--benchmark_color=false')
}

# ------------------------------------------------------------------ other verbs
# A section banner in the style of `kmem demo`'s own.
function Banner([string] $Title) {
    $rule = '=' * 78
    Write-Output ''
    Write-Output $rule
    Write-Output "  $Title"
    Write-Output $rule
}

# The demo: the tour and every study script (kmem demo), a replay of trace A with its summary, then pictures of
# memory in artifacts/pictures/: the replayed machine, and on each profile a process (heap, a written anonymous
# mapping, a forked child) drawn in its virtual address space and in physical memory.
function Invoke-Demo {
    Invoke-Build
    Say 'kmem demo: the tour, then every study script'
    Invoke-Exe $Kmem @('demo')
    $pictures = Join-Path $Artifacts 'pictures'
    if (Test-Path -LiteralPath $pictures) { Remove-Item -Recurse -Force -LiteralPath $pictures }
    New-Item -ItemType Directory -Force -Path $pictures | Out-Null
    $trace = 'src/KmemNative.Cli/Traces/kmem-trace-a.txt.gz'
    Banner "Replay of a real Linux 6.18 trace: $trace (671,005 lines)"
    Invoke-Exe $Kmem @('replay', $trace, '--svg', (Join-Path $pictures 'replay-a-physical.svg'), '--frag-svg', (Join-Path $pictures 'replay-a-fragmentation.svg'))
    Banner 'Pictures of memory: a process in the virtual address space and in physical memory, both profiles'
    foreach ($arch in @('i386', 'x86_64')) {
        Write-Output "--- $arch, 64M (one cell per page in the physical map)"
        $script = @(
            '$p = spawn demo'
            'sbrk $p 64K'
            '$a = mmap $p 0 1M PROT_READ|PROT_WRITE MAP_PRIVATE|MAP_ANONYMOUS'
            'touch $p $a 1M write'
            '$c = fork $p'
            'touch $c $a 256K write'
            "map --virt --pid `$p --svg $(Join-Path $pictures "virtual-$arch.svg")"
            "map --svg $(Join-Path $pictures "physical-$arch-64M.svg")"
        ) -join "`n"
        $script | & $Kmem run - --arch $arch --mem 64M
        if ($LASTEXITCODE -ne 0) { Fail "kmem run (the $arch pictures) exited with code $LASTEXITCODE" $LASTEXITCODE }
    }
    if (Get-Command rsvg-convert -CommandType Application -ErrorAction SilentlyContinue) {
        foreach ($f in Get-ChildItem -LiteralPath $pictures -Filter '*.svg') {
            Invoke-Exe 'rsvg-convert' @($f.FullName, '-o', [IO.Path]::ChangeExtension($f.FullName, '.png'))
        }
    } else {
        Write-Output '(rsvg-convert not found: SVG only; Debian: apt-get install librsvg2-bin for PNG copies)'
    }
    Write-Output "--- in $(Rel $pictures)/:"
    Get-ChildItem -LiteralPath $pictures -Name
}

function Invoke-Bench([string[]] $BenchArgs) {
    # --native: only the C ABI benchmark; otherwise the BenchmarkDotNet suite, then the C ABI benchmark.
    $quick = $BenchArgs -contains '--quick'
    if ($BenchArgs -contains '--native') {
        Invoke-NativeBench $quick
        return
    }
    Assert-Dotnet
    Invoke-Exe dotnet (@('run', '-c', $Config, '--project', $BenchProj) + $RunFlags + @('--') + $BenchArgs)
    if (-not (($BenchArgs -contains '--filter') -or ($BenchArgs -contains '-f'))) { Invoke-NativeBench $quick }
}

function Test-CliStale {
    if (-not (Test-Path -LiteralPath $Kmem)) { return $true }
    $stamp = (Get-Item -LiteralPath $Kmem).LastWriteTimeUtc
    foreach ($f in 'Directory.Build.props', 'Directory.Packages.props', 'global.json') {
        if ((Test-Path -LiteralPath $f) -and (Get-Item -LiteralPath $f).LastWriteTimeUtc -gt $stamp) { return $true }
    }
    $newer = Get-ChildItem -LiteralPath 'src' -Recurse -File -Include '*.cs', '*.csproj' -ErrorAction SilentlyContinue |
        Where-Object { $_.FullName -notmatch '[\\/](bin|obj)[\\/]' -and $_.LastWriteTimeUtc -gt $stamp } |
        Select-Object -First 1
    return [bool] $newer
}

function Invoke-Kmem([string[]] $KmemArgs) {
    Assert-Dotnet
    if (Test-CliStale) {
        # Build chatter goes to stderr so that stdout is the CLI's alone.
        Publish-Cli | ForEach-Object { [Console]::Error.WriteLine($_) }
    }
    & $Kmem @KmemArgs
    exit $LASTEXITCODE
}

function Invoke-Clean {
    Assert-Dotnet
    if (Test-Path -LiteralPath (Join-Path $Artifacts 'obj')) {
        Say 'dotnet clean'
        & dotnet clean $Sln -c $Config @DotnetFlags
        if ($LASTEXITCODE -ne 0) { Warn 'dotnet clean failed; removing artifacts anyway' }
    }
    Say 'rm -rf artifacts native/build'
    foreach ($d in $Artifacts, $NativeBuild) {
        if (Test-Path -LiteralPath $d) { Remove-Item -LiteralPath $d -Recurse -Force }
    }
}

# ------------------------------------------------------------------ main
$Verb = if ($args.Count -gt 0) { [string] $args[0] } else { 'help' }
[string[]] $Rest = if ($args.Count -gt 1) { $args[1..($args.Count - 1)] } else { @() }

try {
    switch -CaseSensitive ($Verb) {
        'build' { Invoke-Build; exit 0 }
        'test' { Invoke-Test }
        'native' { Invoke-Native; exit 0 }
        'demo' { Invoke-Demo; exit 0 }
        'bench' { Invoke-Bench $Rest; exit 0 }
        'kmem' { Invoke-Kmem $Rest }
        'clean' { Invoke-Clean; exit 0 }
        { $_ -in 'help', '-h', '--help' } { Show-Usage; exit 0 }
        default {
            [Console]::Error.WriteLine("build.ps1: unknown verb '$Verb'")
            [Console]::Error.WriteLine('usage: ./build.ps1 {build|test|native|demo|bench|kmem|clean|help} (./build.ps1 help for details)')
            exit 2
        }
    }
} catch [BuildFailure] {
    Warn $_.Exception.Message
    exit $_.Exception.ExitCode
} catch {
    Warn "$($_.Exception.Message) ($($_.InvocationInfo.PositionMessage))"
    exit 1
}
