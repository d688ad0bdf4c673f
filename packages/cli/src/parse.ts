import { InvalidArgumentError } from 'commander';

export function integerOption(flag: string, minimum = 0): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < minimum)
      throw new InvalidArgumentError(`${flag} takes a whole number ≥ ${minimum}, got '${value}'`);
    return parsed;
  };
}

export function numberOption(flag: string): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!Number.isFinite(parsed)) throw new InvalidArgumentError(`${flag} takes a number, got '${value}'`);
    return parsed;
  };
}

/** 'a,b,c' → numbers, each checked like numberOption. */
export function numberList(flag: string): (value: string) => number[] {
  return (value) => value.split(',').map((part) => numberOption(flag)(part.trim()));
}
